import type { ObservableV2 } from 'lib0/observable'
import type { Awareness } from 'y-protocols/awareness'
import type { SyncEngine, WireDoc } from '@kai-sync/engine'

// What a session is given to reach a relay and what it gets back: shared by
// the connector (relay-connector.ts) and the link it loads (relay-link.ts).

/** What a relay connection is given: the session's wire doc and presence. */
export interface RelayTarget {
  sessionId: string
  wire: WireDoc
  awareness: Awareness
  engine: SyncEngine
}

export interface RelayConnectionEvents {
  status: (connected: boolean) => void
}

/** A live link to a relay; the app shows "offline" while it is not connected. */
export interface RelayConnection extends Pick<ObservableV2<RelayConnectionEvents>, 'on' | 'off'> {
  readonly connected: boolean
  /** The relay's last refusal (a 44xx close: this device was removed, say), until it connects again. */
  readonly refusal: RelayRefusal | null
  /** The relay's address (ws:// or wss://). */
  readonly url: string
  /** Resolves once the relay acknowledged every change this context made to the wire doc. */
  whenAcknowledged(): Promise<void>
  destroy(): void
}

export interface RelayRefusal {
  code: number
  reason: string
}

/**
 * Connects a session's wire doc to a relay: the stock y-websocket provider
 * on `wire.doc` (room = session id, a device-signed capability in the URL)
 * plus `engine.registerStore('remote', …)` acknowledgements.
 */
export type ConnectRelay = (target: RelayTarget) => RelayConnection

export interface RelayConnectorOptions {
  /** Every context connects itself rather than one holding the socket for all (see relay-link.ts). */
  perContext?: boolean
}
