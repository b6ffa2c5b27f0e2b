import type { Participant } from '../participant'

/** A room participant without a socket: it keeps what the room sends it and how the room closed it. */
export type TestParticipant = Participant & { received: Uint8Array[]; closedWith: number | null; reason: string }

/** A client of `device` (null: a federated peer relay) joined straight to an in-process Room. */
export function testParticipant(device: Uint8Array | null, label: string): TestParticipant {
  return {
    kind: 'client',
    device,
    wantsAck: false,
    label,
    awarenessIds: new Set(),
    deferred: [],
    awaitingGenesis: false,
    awaitingMembership: false,
    waiting: [],
    received: [],
    closedWith: null,
    reason: '',
    send(message) {
      this.received.push(message)
    },
    close(code, reason) {
      this.closedWith = code
      this.reason = reason
    },
  }
}
