import * as Y from 'yjs'
import { ObservableV2 } from 'lib0/observable'
import { type DeviceKey } from '@kai-sync/crypto'
import { capabilityToParam, signCapability } from '@kai-sync/crypto/capability'
import type { SyncEngine } from '@kai-sync/engine'
import type { RelayConnection as ProviderConnection } from '@kai-sync/providers'
import type { RelayConnection, RelayConnectionEvents, RelayConnectorOptions, RelayRefusal, RelayTarget } from './relay-connection'

/** After the relay refuses a connection (a 44xx close: not enrolled yet, say), retry this much later, doubling (sooner than connectRelay's default: a person is watching). */
const REFUSED_RETRY_MS = 1_000
const REFUSED_RETRY_MAX_MS = 60_000

/** Signs a fresh single-use capability for `room` with this device's key. */
export function capabilitySource(room: string, device: DeviceKey): () => Promise<string> {
  return async () => capabilityToParam(await signCapability({ room }, device))
}

/** The link to the relay at `url` for one session (relayConnector, relay-connector.ts, loads this module for it). */
export function openRelayLink(url: string, device: DeviceKey, target: RelayTarget, options: RelayConnectorOptions): RelayConnection {
  const shared = !options.perContext && typeof navigator !== 'undefined' && 'locks' in navigator
  return shared ? new SharedRelayLink(url, device, target) : new BrowserRelayLink(url, device, target)
}

type RelayNews = { type: 'ask' } | { type: 'state'; connected: boolean; refusal: RelayRefusal | null; acknowledged: Array<[number, number]> }

class SharedRelayLink extends ObservableV2<RelayConnectionEvents> implements RelayConnection {
  connected = false
  refusal: RelayRefusal | null = null
  private link: BrowserRelayLink | null = null
  private readonly channel: BroadcastChannel
  private readonly abort = new AbortController()
  private release: (() => void) | null = null
  private destroyed = false
  /** What the relay holds, as the holding context last told. */
  private readonly acknowledged = new Map<number, number>()
  private readonly heard = new ObservableV2<{ ack: () => void }>()
  private store: ReturnType<SyncEngine['registerStore']> | null

  constructor(
    readonly url: string,
    private readonly device: DeviceKey,
    private readonly target: RelayTarget,
  ) {
    super()
    this.channel = new BroadcastChannel(`kai-sync/relay/${target.sessionId}`)
    this.channel.onmessage = (e: MessageEvent) => this.hear(e.data as RelayNews)
    this.store = target.engine.registerStore('remote', `relay ${url}, through another context`)
    navigator.locks
      .request(`kai-sync/relay/${target.sessionId}`, { signal: this.abort.signal }, () => {
        if (this.destroyed) return undefined
        this.lead()
        return new Promise<void>((resolve) => (this.release = resolve))
      })
      .catch(() => undefined) // aborted: this context closed while waiting its turn
    this.post({ type: 'ask' })
  }

  /** This context holds the socket now: the earlier holder closed, or there was none. */
  private lead(): void {
    this.store?.remove()
    this.store = null
    const link = (this.link = new BrowserRelayLink(this.url, this.device, this.target))
    link.on('status', (connected) => {
      this.refusal = link.refusal
      this.setConnected(connected, true)
      this.tell()
    })
    link.onAck = (acknowledged) => {
      for (const [client, clock] of acknowledged) this.acknowledged.set(client, clock)
      this.tell()
    }
    this.heard.emit('ack', [])
  }

  private tell(): void {
    this.post({ type: 'state', connected: this.connected, refusal: this.refusal, acknowledged: [...this.acknowledged] })
  }

  private hear(news: RelayNews): void {
    if (news.type === 'ask') {
      if (this.link) this.tell()
      return
    }
    if (this.link) return
    const refused = JSON.stringify(news.refusal) !== JSON.stringify(this.refusal)
    this.refusal = news.refusal
    this.setConnected(news.connected, refused)
    for (const [client, clock] of news.acknowledged) this.acknowledged.set(client, Math.max(clock, this.acknowledged.get(client) ?? 0))
    this.store?.acknowledge(this.acknowledged)
    this.heard.emit('ack', [])
  }

  async whenAcknowledged(): Promise<void> {
    if (this.link) return this.link.whenAcknowledged()
    const doc = this.target.wire.doc
    const done = () => this.link !== null || (this.acknowledged.get(doc.clientID) ?? 0) >= Y.getState(doc.store, doc.clientID)
    while (!done() && !this.destroyed) await new Promise<void>((resolve) => this.heard.once('ack', resolve))
    // It may have become the holder meanwhile (TS narrowed `link` to null above).
    const link = this.link as BrowserRelayLink | null
    if (link) await link.whenAcknowledged()
  }

  private post(news: RelayNews): void {
    if (!this.destroyed) this.channel.postMessage(news)
  }

  private setConnected(connected: boolean, changed = false): void {
    if (connected === this.connected && !changed) return
    this.connected = connected
    this.emit('status', [connected])
  }

  override destroy(): void {
    this.destroyed = true
    this.abort.abort()
    this.link?.destroy()
    this.release?.()
    this.channel.close()
    this.store?.remove()
    this.heard.destroy()
    super.destroy()
  }
}

class BrowserRelayLink extends ObservableV2<RelayConnectionEvents> implements RelayConnection {
  connected = false
  refusal: RelayRefusal | null = null
  /** Told the relay's acknowledgements, accumulated (the shared link passes them to the other contexts). */
  onAck: ((acknowledged: Map<number, number>) => void) | null = null
  private connection: ProviderConnection | null = null
  private destroyed = false

  constructor(
    readonly url: string,
    device: DeviceKey,
    target: RelayTarget,
  ) {
    super()
    // A refusal stops the stock provider; a device enrolled a moment ago may
    // be refused until the relay sees its roster entry, so connectRelay tries
    // again, ever more rarely, with a fresh capability.
    // The socket's code (y-websocket and its protocol) is fetched with the
    // first link rather than with the page: a session opens and takes
    // typing from this device's own store, relay or not. Where the chunk
    // cannot be fetched the link stays offline, as for a relay it cannot reach.
    import('@kai-sync/providers')
      .then(({ connectRelay }) =>
        connectRelay(target.wire, url, capabilitySource(target.sessionId, device), target.engine, { name: `relay ${url}`, awareness: target.awareness, retryRefused: { firstMs: REFUSED_RETRY_MS, maxMs: REFUSED_RETRY_MAX_MS } }),
      )
      .then(
      (connection) => {
        if (this.destroyed) return connection.destroy()
        this.connection = connection
        connection.on('status', (status) => {
          const connected = status === 'connected'
          const cleared = connected && this.refusal !== null
          if (connected) this.refusal = null
          this.setConnected(connected, cleared)
        })
        connection.on('ack', () => this.onAck?.(connection.acknowledged))
        connection.on('closed', ({ code, reason }) => {
          this.refusal = { code, reason }
          this.setConnected(false, true)
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
    this.connection?.destroy()
    this.setConnected(false)
    super.destroy()
  }

  private setConnected(connected: boolean, changed = false): void {
    if (connected === this.connected && !changed) return
    this.connected = connected
    this.emit('status', [connected])
  }
}
