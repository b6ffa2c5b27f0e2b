import * as decoding from 'lib0/decoding'
import { ObservableV2 } from 'lib0/observable'
import { WebsocketProvider } from 'y-websocket'
import type { Awareness } from 'y-protocols/awareness'
import { CAPABILITY_PARAM, decodeCapability } from '@kai-sync/crypto'
import type { SyncEngine, WireDoc } from '@kai-sync/engine'
import { ACK_PARAM, MESSAGE_ACK } from './relay-protocol'
import { DefaultWebSocket } from '#websocket'

/** A capability token, or a function that signs a fresh one (needed to reconnect: each is used once). */
export type CapabilitySource = string | (() => Promise<string>)

export interface RelayConnectionEvents {
  /** The relay acknowledged storing these clocks. */
  ack: (state: Map<number, number>) => void
  /** The relay closed the connection for good (a 44xx code); it will not reconnect. */
  closed: (event: { code: number; reason: string }) => void
  status: (status: 'connecting' | 'connected' | 'disconnected') => void
}

/**
 * A wire doc synced with a kai-sync relay through the stock y-websocket
 * provider. Before every reconnect it passes a fresh capability, and it
 * reports the relay's acknowledgements to the engine as a 'remote' store,
 * which is what turns the status to "synced".
 */
export class RelayConnection extends ObservableV2<RelayConnectionEvents> {
  private next: Promise<string> | null = null
  private readonly store: ReturnType<SyncEngine['registerStore']> | undefined
  /** What the relay has acknowledged: the highest clock per client. */
  readonly acknowledged = new Map<number, number>()

  constructor(
    readonly provider: WebsocketProvider,
    private readonly source: CapabilitySource,
    engine: SyncEngine | undefined,
    name: string,
  ) {
    super()
    this.store = engine?.registerStore('remote', name)
    provider.messageHandlers[MESSAGE_ACK] = (_encoder, decoder) => this.onAck(decoder)
    provider.on('status', ({ status }) => this.emit('status', [status]))
    provider.on('closed', (event) => this.emit('closed', [event]))
    provider.on('connection-close', () => this.refreshCapability())
    this.prepareNext()
  }

  get room(): string {
    return this.provider.roomname
  }

  /** Resolves once the first sync with the relay completed. */
  whenSynced(): Promise<void> {
    if (this.provider.synced) return Promise.resolve()
    return new Promise((resolve) => this.provider.once('sync', () => resolve()))
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
    const state = new Map<number, number>()
    for (let n = decoding.readVarUint(decoder); n > 0; n--) {
      const client = decoding.readVarUint(decoder)
      state.set(client, decoding.readVarUint(decoder))
    }
    for (const [client, clock] of state) this.acknowledged.set(client, Math.max(clock, this.acknowledged.get(client) ?? 0))
    this.store?.acknowledge(this.acknowledged)
    this.emit('ack', [state])
  }

  private prepareNext(): void {
    if (typeof this.source === 'function') this.next = this.source()
  }

  /** The provider reads `params` when it reconnects; a capability is single-use, so swap in a new one. */
  private refreshCapability(): void {
    if (!this.next) return
    const next = this.next
    this.prepareNext()
    void next.then((cap) => {
      this.provider.params = { ...this.provider.params, [CAPABILITY_PARAM]: cap }
    })
  }

  override destroy(): void {
    this.store?.remove()
    this.provider.destroy()
    super.destroy()
  }
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
  options: {
    name?: string
    /** The WebSocket class; by default the platform's (`ws` on Node 20, where there is none). */
    WebSocket?: typeof WebSocket
    /** Presence to share through the relay (sealed states only), instead of a private one. */
    awareness?: Awareness
  } = {},
): Promise<RelayConnection> {
  const first = typeof capability === 'function' ? await capability() : capability
  const room = decodeCapability(first).room
  const provider = new WebsocketProvider(url, room, wire.doc, {
    params: { [CAPABILITY_PARAM]: first, [ACK_PARAM]: '1' },
    WebSocketPolyfill: options.WebSocket ?? DefaultWebSocket,
    ...(options.awareness ? { awareness: options.awareness } : {}),
    // Contexts of one device talk over their own BroadcastChannel transport.
    disableBc: true,
  })
  return new RelayConnection(provider, capability, engine, options.name ?? `relay ${url}`)
}
