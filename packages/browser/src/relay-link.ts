import { ObservableV2 } from 'lib0/observable'
import type { Awareness } from 'y-protocols/awareness'
import { capabilityToParam, signCapability, type DeviceKey } from '@kai-sync/crypto'
import type { SyncEngine, WireDoc } from '@kai-sync/engine'
import { connectRelay, type RelayConnection as ProviderConnection } from '@kai-sync/providers'

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
  /** The relay's address (ws:// or wss://). */
  readonly url: string
  /** Resolves once the relay acknowledged every change this context made to the wire doc. */
  whenAcknowledged(): Promise<void>
  destroy(): void
}

/**
 * Connects a session's wire doc to a relay: the stock y-websocket provider
 * on `wire.doc` (room = session id, a device-signed capability in the URL)
 * plus `engine.registerStore('remote', …)` acknowledgements.
 */
export type ConnectRelay = (target: RelayTarget) => RelayConnection

/** After the relay refuses a connection (a 44xx close: not enrolled yet, say), retry this much later, doubling. */
const REFUSED_RETRY_MS = 1_000
const REFUSED_RETRY_MAX_MS = 60_000

/** Signs a fresh single-use capability for `room` with this device's key. */
export function capabilitySource(room: string, device: DeviceKey): () => Promise<string> {
  return async () => capabilityToParam(await signCapability({ room }, device))
}

/**
 * The relay at `url` for every session this device opens in this context.
 * Each context keeps its own link (tabs of one origin also share changes
 * over BroadcastChannel, so a context whose link is down still gets them).
 */
export function relayConnector(url: string, device: DeviceKey): ConnectRelay {
  return (target) => new BrowserRelayLink(url, device, target)
}

class BrowserRelayLink extends ObservableV2<RelayConnectionEvents> implements RelayConnection {
  connected = false
  private connection: ProviderConnection | null = null
  private destroyed = false
  private retryMs = REFUSED_RETRY_MS
  private retryTimer: ReturnType<typeof setTimeout> | undefined

  constructor(
    readonly url: string,
    device: DeviceKey,
    target: RelayTarget,
  ) {
    super()
    connectRelay(target.wire, url, capabilitySource(target.sessionId, device), target.engine, { name: `relay ${url}`, awareness: target.awareness }).then(
      (connection) => {
        if (this.destroyed) return connection.destroy()
        this.connection = connection
        connection.on('status', (status) => this.setConnected(status === 'connected'))
        connection.provider.on('sync', (synced: boolean) => {
          if (synced) this.retryMs = REFUSED_RETRY_MS
        })
        // A refusal stops the provider; a device enrolled a moment ago may be
        // refused until the relay sees its roster entry, so try again, ever more rarely.
        connection.on('closed', () => {
          this.setConnected(false)
          this.retryTimer = setTimeout(() => !this.destroyed && connection.provider.connect(), this.retryMs)
          this.retryMs = Math.min(this.retryMs * 2, REFUSED_RETRY_MAX_MS)
        })
      },
      (e: unknown) => console.warn('cannot reach the relay:', (e as Error).message),
    )
  }

  async whenAcknowledged(): Promise<void> {
    while (!this.connection && !this.destroyed) await new Promise((r) => setTimeout(r, 20))
    await this.connection?.whenAcknowledged()
  }

  override destroy(): void {
    this.destroyed = true
    clearTimeout(this.retryTimer)
    this.connection?.destroy()
    this.setConnected(false)
    super.destroy()
  }

  private setConnected(connected: boolean): void {
    if (connected === this.connected) return
    this.connected = connected
    this.emit('status', [connected])
  }
}
