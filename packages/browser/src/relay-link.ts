import type { ObservableV2 } from 'lib0/observable'
import type { Awareness } from 'y-protocols/awareness'
import type { SyncEngine, WireDoc } from '@kai-sync/engine'

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
  destroy(): void
}

/**
 * Connects a session's wire doc to a relay: the stock y-websocket provider
 * on `wire.doc` (room = session id, a device-signed capability in the URL)
 * plus `engine.registerStore('remote', …)` acknowledgements. The one seam
 * where the relay (apps/relay, being built) plugs in; until then sessions
 * sync between the contexts of one origin only.
 */
export type ConnectRelay = (target: RelayTarget) => RelayConnection
