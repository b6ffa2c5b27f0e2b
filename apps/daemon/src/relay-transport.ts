import { type DeviceKey } from '@kai-sync/crypto'
import { capabilityToParam, signCapability } from '@kai-sync/crypto/capability'
import type { Presence, SyncEngine } from '@kai-sync/engine'
import { connectRelay, type RelayConnection, type RelayState } from '@kai-sync/providers'
import type { Logger } from './log'

// The daemon's one link to the relay: `connectRelay` from
// @kai-sync/providers (the stock y-websocket provider, a fresh device-signed
// capability per connection, the relay's acks reported to the engine so its
// status turns "synced", the daemon's presence as awareness), retrying
// after a 44xx refusal, with its state changes in the log.

export type { RelayState, RelayConnection }

export interface RelayLinkOptions {
  /** ws:// or wss:// address of the relay. */
  url: string
  engine: SyncEngine
  device: DeviceKey
  log: Logger
  /** The session's presence (HostedSession.presence), carried to the other devices. */
  awareness: Presence['awareness']
}

/** Connects a session's wire doc to the relay; it reconnects on its own until destroyed. */
export async function connectSessionRelay(options: RelayLinkOptions): Promise<RelayConnection> {
  const { url, engine, device, log, awareness } = options
  const session = engine.sessionId
  const sign = async () => capabilityToParam(await signCapability({ room: session }, device))
  // A refusal is retried, ever more rarely: a device enrolled a moment ago
  // may be refused until the relay sees its roster entry.
  const relay = await connectRelay(engine.wire, url, sign, engine, { name: 'relay', awareness, retryRefused: true })
  relay.on('state', (state) => log.info('relay', { session, state }))
  // The reason is the relay's own text, which names no secret.
  relay.on('closed', ({ code, reason }) => log.warn('relay refused the connection', { session, code, reason, retry_ms: relay.refusalRetryMs }))
  relay.on('error', (e) => log.error('cannot sign a relay capability', { session, error: e.message }))
  return relay
}
