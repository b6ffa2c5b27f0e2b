import { WebsocketProvider } from 'y-websocket'
import WS from 'ws'
import { ObservableV2 } from 'lib0/observable'
import { CAPABILITY_PARAM, capabilityToParam, signCapability, type DeviceKey } from '@kai-sync/crypto'
import { KaiError } from '@kai-sync/model'
import type { WireDoc } from '@kai-sync/engine'
import type { Logger } from './log'

// The daemon's one link to the relay: a wire doc synced through the stock
// y-websocket provider, with a fresh device-signed capability for every
// connection attempt (each is single-use and short-lived). Everything the
// daemon knows about the relay goes through `connectRelay` below, so it can
// be swapped for `connectRelay` from @kai-sync/providers in one place.

export type RelayState = 'connecting' | 'connected' | 'disconnected' | 'refused'

export interface RelayTransportEvents {
  state: (state: RelayState) => void
}

/** After the relay refuses a connection for good (a 44xx close), retry this much later, doubling up to the max. */
const REFUSED_RETRY_MS = 2_000
const REFUSED_RETRY_MAX_MS = 5 * 60_000
/** Reconnect at most this long after losing the relay. */
const MAX_BACKOFF_MS = 2_500

export interface RelayTransportOptions {
  /** ws:// or wss:// address of the relay. */
  url: string
  sessionId: string
  wire: WireDoc
  device: DeviceKey
  log: Logger
}

export class RelayTransport extends ObservableV2<RelayTransportEvents> {
  state: RelayState = 'connecting'
  private refusedRetryMs = REFUSED_RETRY_MS
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private destroyed = false

  private constructor(
    readonly url: string,
    private readonly provider: WebsocketProvider,
    private readonly options: RelayTransportOptions,
  ) {
    super()
    provider.on('status', ({ status }) => this.setState(status))
    provider.on('sync', (synced) => {
      if (synced) this.refusedRetryMs = REFUSED_RETRY_MS
    })
    // The provider reads `params` when it reconnects (at least 100 ms after a
    // close), by which time the fresh capability signed here is in place.
    provider.on('connection-close', () => void this.refreshCapability())
    provider.on('connection-error', () => options.log.debug('relay connection error', { session: options.sessionId }))
    provider.on('closed', ({ code }) => this.onRefused(code))
  }

  static async connect(options: RelayTransportOptions): Promise<RelayTransport> {
    if (!/^wss?:\/\//.test(options.url)) throw new KaiError('invalid_input', `the relay address must be ws:// or wss:// (got ${options.url.slice(0, 60)})`)
    const provider = new WebsocketProvider(options.url, options.sessionId, options.wire.doc, {
      params: { [CAPABILITY_PARAM]: await signedCapability(options) },
      // Node 20 has no global WebSocket.
      WebSocketPolyfill: WS as unknown as typeof WebSocket,
      disableBc: true,
      maxBackoffTime: MAX_BACKOFF_MS,
    })
    return new RelayTransport(options.url, provider, options)
  }

  get synced(): boolean {
    return this.provider.synced
  }

  /** Resolves after the first full sync with the relay; rejects with `unavailable` after `timeoutMs`. */
  whenSynced(timeoutMs: number): Promise<void> {
    if (this.provider.synced) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.provider.off('sync', onSync)
        reject(new KaiError('unavailable', `the relay at ${this.url} did not sync session ${this.options.sessionId} within ${timeoutMs} ms`))
      }, timeoutMs)
      const onSync = (synced: boolean) => {
        if (!synced) return
        clearTimeout(timer)
        this.provider.off('sync', onSync)
        resolve()
      }
      this.provider.on('sync', onSync)
    })
  }

  override destroy(): void {
    this.destroyed = true
    clearTimeout(this.retryTimer)
    this.provider.destroy()
    super.destroy()
  }

  private setState(state: RelayState): void {
    if (state === this.state) return
    this.state = state
    this.options.log.info('relay', { session: this.options.sessionId, state })
    this.emit('state', [state])
  }

  private async refreshCapability(): Promise<void> {
    try {
      const cap = await signedCapability(this.options)
      if (!this.destroyed) this.provider.params = { ...this.provider.params, [CAPABILITY_PARAM]: cap }
    } catch (e) {
      this.options.log.error('cannot sign a relay capability', { session: this.options.sessionId, error: (e as Error).message })
    }
  }

  /**
   * The relay closed with a 44xx code (not a member yet, removed, limits):
   * the provider stops. A device enrolled a moment ago may be refused until
   * the relay sees its roster entry, so try again, ever more rarely.
   */
  private onRefused(code: number): void {
    this.setState('refused')
    this.options.log.warn('relay refused the connection', { session: this.options.sessionId, code, retry_ms: this.refusedRetryMs })
    this.retryTimer = setTimeout(() => {
      if (this.destroyed) return
      void this.refreshCapability().then(() => this.provider.connect())
    }, this.refusedRetryMs)
    this.refusedRetryMs = Math.min(this.refusedRetryMs * 2, REFUSED_RETRY_MAX_MS)
  }
}

async function signedCapability(options: RelayTransportOptions): Promise<string> {
  return capabilityToParam(await signCapability({ room: options.sessionId }, options.device))
}

/** Connects a session's wire doc to the relay. The one function to swap for `connectRelay` from @kai-sync/providers. */
export function connectRelay(options: RelayTransportOptions): Promise<RelayTransport> {
  return RelayTransport.connect(options)
}
