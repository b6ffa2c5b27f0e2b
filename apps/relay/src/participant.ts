import type { PreparedUpdate } from './update-guard'

/**
 * Something in a room that exchanges y-websocket messages with it: a client
 * connection, or a link to a federated peer relay.
 */
export interface Participant {
  /**
   * A device's connection; a peer relay's connection to us; our link to a
   * peer relay. Clients and incoming peers keep a room loaded; our own
   * links follow the room's clients.
   */
  readonly kind: 'client' | 'peer-in' | 'peer-out'
  /** The device whose capability opened the connection; null for a peer relay. */
  readonly device: Uint8Array | null
  /** Asked for MESSAGE_ACK with `?ack=1`. */
  readonly wantsAck: boolean
  /** A short, secret-free name for logs. */
  readonly label: string
  /** Awareness client ids this participant set, removed when it leaves. */
  readonly awarenessIds: Set<number>
  /** Updates waiting for data the relay lacks. */
  deferred: PreparedUpdate[]
  /** Opened a room that had no genesis yet: its first write must bring one. */
  awaitingGenesis: boolean
  /**
   * Admitted by its capability, but its device is not (yet) in the roster:
   * it hears nothing and its messages wait, until the entry enrolling it
   * arrives (it may be on its way from another relay) or the grace ends.
   */
  awaitingMembership: boolean
  /**
   * A handoff target that resumed with a token (the relay burned it) and is
   * not in the roster yet: it syncs like a member so it can enroll itself
   * with the invite, until its entry arrives or the enrollment deadline ends.
   */
  enrolling?: boolean
  /** Messages received while awaiting membership, handled once admitted. */
  waiting: Uint8Array[]
  send(message: Uint8Array): void
  close(code: number, reason: string): void
}
