import type * as decoding from 'lib0/decoding'
import * as Y from 'yjs'
import { ObservableV2 } from 'lib0/observable'
import { WebsocketProvider } from 'y-websocket'
import type { Awareness } from 'y-protocols/awareness'
import { CAPABILITY_PARAM, decodeCapability } from '@kai-sync/crypto/capability'
import { KaiError } from '@kai-sync/model'
import type { SyncEngine, WireDoc } from '@kai-sync/engine'
import { ACK_PARAM, MESSAGE_ACK, readAck } from '@kai-sync/engine'
import { DefaultWebSocket } from '#websocket'

/** A capability token, or a function that signs a fresh one (needed to reconnect: each is used once). */
export type CapabilitySource = string | (() => Promise<string>)

/** The link as an app shows it: `refused` after a 44xx close, until a retry (if any) starts connecting again. */
export type RelayState = 'connecting' | 'connected' | 'disconnected' | 'refused'

/** After a refusal, try again `firstMs` later, doubling up to `maxMs`; reset once a connection synced. */
export interface RefusalRetry {
  firstMs: number
  maxMs: number
}

export const DEFAULT_REFUSAL_RETRY: RefusalRetry = { firstMs: 2_000, maxMs: 5 * 60_000 }
/** A capability signed ahead is used for a reconnect only while it has this long left; else a fresh one is signed. */
const CAPABILITY_MIN_LIFE_MS = 15_000

export interface RelayConnectionEvents {
  /** The relay acknowledged storing these clocks. */
  ack: (state: Map<number, number>) => void
  /** The relay closed the connection with a 44xx code: the provider stops (see `retryRefused`). */
  closed: (event: { code: number; reason: string }) => void
  status: (status: 'connecting' | 'connected' | 'disconnected') => void
  /** `state` changed. */
  state: (state: RelayState) => void
  /** A capability could not be signed; the next connection attempt will likely be refused. */
  error: (error: Error) => void
}

export interface ConnectRelayOptions {
  /** The engine's name for the relay as a store (default `relay <url>`). */
  name?: string
  /**
   * Reconnect after a 44xx refusal, ever more rarely (true: DEFAULT_REFUSAL_RETRY).
   * A device enrolled a moment ago, or one over a rate limit, is let in later.
   * Off by default: the stock provider treats a 44xx as final.
   */
  retryRefused?: boolean | RefusalRetry
  /** The WebSocket class; by default the platform's (`ws` on Node 20, where there is none). */
  WebSocket?: typeof WebSocket
  /** Presence to share through the relay (sealed states only), instead of a private one. */
  awareness?: Awareness
}

/**
 * A wire doc synced with a kai-sync relay through the stock y-websocket
 * provider. Before every reconnect it passes a fresh capability, and it
 * reports the relay's acknowledgements to the engine as a 'remote' store,
 * which is what turns the status to "synced".
 */
export class RelayConnection extends ObservableV2<RelayConnectionEvents> {
  /** The relay as the engine's remote store: registered at the first ack that covers the whole wire doc. */
  private store: ReturnType<SyncEngine['registerStore']> | undefined
  /** A capability signed ahead, so a reconnect need not wait for a signature. */
  private ahead: { cap: string; expiresAt: number } | null = null
  private signingAhead = false
  private readonly retry: RefusalRetry | null
  private retryMs: number
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private destroyed = false
  /** The provider made its own awareness: ours to destroy (its 3 s check would keep a process alive). */
  private readonly ownsAwareness: boolean
  /** What the relay has acknowledged: the highest clock per client. */
  readonly acknowledged = new Map<number, number>()
  /** What the relay holds as far as we know: what it acknowledged to us or sent us. */
  private readonly relayHolds = new Map<number, number>()
  state: RelayState = 'connecting'

  constructor(
    readonly provider: WebsocketProvider,
    private readonly source: CapabilitySource,
    private readonly engine: SyncEngine | undefined,
    private readonly name: string,
    options: Pick<ConnectRelayOptions, 'retryRefused' | 'awareness'> = {},
  ) {
    super()
    this.retry = options.retryRefused === true ? DEFAULT_REFUSAL_RETRY : options.retryRefused || null
    this.retryMs = this.retry?.firstMs ?? 0
    this.ownsAwareness = options.awareness === undefined
    provider.messageHandlers[MESSAGE_ACK] = (_encoder, decoder) => this.onAck(decoder)
    provider.on('status', ({ status }) => {
      this.emit('status', [status])
      this.setState(status)
    })
    provider.on('sync', (synced) => {
      if (synced && this.retry) this.retryMs = this.retry.firstMs
    })
    provider.on('closed', (event) => this.onRefused(event))
    provider.doc.on('update', this.onUpdate)
    provider.on('connection-close', () => this.swapCapability())
    this.signAhead()
  }

  get room(): string {
    return this.provider.roomname
  }

  get synced(): boolean {
    return this.provider.synced
  }

  /** Resolves once the first sync with the relay completed; with `timeoutMs`, rejects with `unavailable` after it. */
  whenSynced(timeoutMs?: number): Promise<void> {
    if (this.provider.synced) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const onSync = (synced: boolean) => {
        if (!synced) return
        clearTimeout(timer)
        this.provider.off('sync', onSync)
        resolve()
      }
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              this.provider.off('sync', onSync)
              reject(new KaiError('unavailable', `the relay did not sync room ${this.room.slice(0, 60)} within ${timeoutMs} ms: check that it runs and that this device is a member`))
            }, timeoutMs)
      this.provider.on('sync', onSync)
    })
  }

  /** Resolves once the relay acknowledged every local change of the wire doc. */
  whenAcknowledged(): Promise<void> {
    const doc = this.provider.doc
    const done = () => (this.acknowledged.get(doc.clientID) ?? 0) >= (doc.store.clients.has(doc.clientID) ? getClock(doc) : 0)
    if (done()) return Promise.resolve()
    return new Promise((resolve) => {
      const check = () => {
        if (!done()) return
        this.off('ack', check)
        resolve()
      }
      this.on('ack', check)
    })
  }

  private onAck(decoder: decoding.Decoder): void {
    const state = readAck(decoder)
    raise(this.acknowledged, state)
    raise(this.relayHolds, state)
    this.report()
    this.emit('ack', [state])
  }

  /** What the relay sent us, it holds (acks only name what a client itself sent). */
  private readonly onUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin !== this.provider) return
    raise(this.relayHolds, Y.parseUpdateMeta(update).to)
    this.report()
  }

  /**
   * Tells the engine what the relay holds, once that covers everything the
   * wire doc holds: the engine counts only this run's own client, so a doc
   * loaded with writes from before a restart would otherwise pass as synced
   * before the relay has them.
   */
  private report(): void {
    if (!this.engine || !this.coversWireDoc()) return
    this.store ??= this.engine.registerStore('remote', this.name)
    this.store.acknowledge(this.relayHolds)
  }

  private coversWireDoc(): boolean {
    const store = this.provider.doc.store
    for (const client of store.clients.keys()) {
      if ((this.relayHolds.get(client) ?? 0) < Y.getState(store, client)) return false
    }
    return true
  }

  private setState(state: RelayState): void {
    if (state === this.state) return
    this.state = state
    this.emit('state', [state])
  }

  private signAhead(): void {
    if (typeof this.source !== 'function' || this.signingAhead || this.destroyed) return
    this.signingAhead = true
    this.source().then(
      (cap) => {
        this.signingAhead = false
        this.ahead = { cap, expiresAt: decodeCapability(cap).expiresAt }
      },
      (e: unknown) => {
        this.signingAhead = false
        this.emit('error', [e as Error])
      },
    )
  }

  private setCapability(cap: string): void {
    if (!this.destroyed) this.provider.params = { ...this.provider.params, [CAPABILITY_PARAM]: cap }
  }

  /** Signs a new capability now and puts it in place. */
  private async freshCapability(): Promise<void> {
    if (typeof this.source !== 'function') return
    try {
      this.setCapability(await this.source())
    } catch (e) {
      this.emit('error', [e as Error])
    }
  }

  /**
   * The provider reads `params` when it reconnects (200 ms or more after a
   * close); a capability is single-use, so put a new one in place: the one
   * signed ahead if it has enough life left (a connection may have lasted
   * longer than a capability lives), else one signed now.
   */
  private swapCapability(): void {
    if (typeof this.source !== 'function') return
    const ahead = this.ahead
    this.ahead = null
    if (ahead && ahead.expiresAt - Date.now() > CAPABILITY_MIN_LIFE_MS) this.setCapability(ahead.cap)
    else void this.freshCapability()
    this.signAhead()
  }

  /** A 44xx close: the provider stopped; try again later if asked to. */
  private onRefused(event: { code: number; reason: string }): void {
    this.setState('refused')
    this.emit('closed', [event])
    // A removal is final (the roster never re-admits a removed device), so
    // retrying would only knock on a closed door every few minutes.
    if (!this.retry || this.destroyed || this.engine?.role === 'removed') return
    clearTimeout(this.retryTimer)
    this.retryTimer = setTimeout(() => {
      // Signed just before connecting: the wait may have outlived any capability signed earlier.
      void this.freshCapability().then(() => {
        if (!this.destroyed && this.state === 'refused') this.provider.connect()
      })
    }, this.retryMs)
    this.retryMs = Math.min(this.retryMs * 2, this.retry.maxMs)
  }

  /** The delay before the next retry after a refusal (for logs). */
  get refusalRetryMs(): number | null {
    return this.retry ? this.retryMs : null
  }

  override destroy(): void {
    this.destroyed = true
    clearTimeout(this.retryTimer)
    this.store?.remove()
    this.provider.doc.off('update', this.onUpdate)
    this.provider.destroy()
    if (this.ownsAwareness) this.provider.awareness.destroy()
    super.destroy()
  }
}

function raise(into: Map<number, number>, state: Map<number, number>): void {
  for (const [client, clock] of state) into.set(client, Math.max(clock, into.get(client) ?? 0))
}

function getClock(doc: WireDoc['doc']): number {
  const structs = doc.store.clients.get(doc.clientID)!
  const last = structs[structs.length - 1]!
  return last.id.clock + last.length
}

/**
 * Connects a wire doc to a relay room: the room is the session id the
 * capability names. `url` is the relay's ws:// or wss:// address.
 */
export async function connectRelay(
  wire: WireDoc,
  url: string,
  capability: CapabilitySource,
  engine?: SyncEngine,
  options: ConnectRelayOptions = {},
): Promise<RelayConnection> {
  if (!/^wss?:\/\//.test(url)) throw new KaiError('invalid_input', `the relay address must be ws:// or wss:// (got ${url.slice(0, 60)})`)
  const first = typeof capability === 'function' ? await capability() : capability
  const room = decodeCapability(first).room
  const provider = new WebsocketProvider(url, room, wire.doc, {
    params: { [CAPABILITY_PARAM]: first, [ACK_PARAM]: '1' },
    WebSocketPolyfill: options.WebSocket ?? DefaultWebSocket,
    ...(options.awareness ? { awareness: options.awareness } : {}),
    // Contexts of one device talk over their own BroadcastChannel transport.
    disableBc: true,
  })
  return new RelayConnection(provider, capability, engine, options.name ?? `relay ${url}`, options)
}
