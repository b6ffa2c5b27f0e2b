import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import type { SignatureVerifier } from '@kai-sync/crypto'
import type { UpdateStore } from '@kai-sync/storage'
import { CloseCode, Refusal } from './close-codes'
import { admit, ROOM_NAME } from './authorize'
import { Connection, truncate } from './connection'
import { Room, type RoomHost } from './room'
import { PromMetrics, type Metrics } from './metrics'
import { NoMetrics } from './no-metrics'
import { createLogger, deviceTag, type Logger } from './log'
import { DEFAULT_LIMITS, type RelayLimits } from './limits'
import { MemoryNonceCache, type NonceCache } from './nonce-cache'
import type { Fanout } from './fanout'
import { ACK_PARAM, PEER_PARAM } from './protocol'
import { nodeVerifier } from '@kai-sync/crypto'
import { sodiumVerifier, type RelayVerifier } from './sodium-verifier'
import type { Federation } from './federation'
import { HandoffEndpoints } from './handoff-endpoints'
import type { HandoffStore } from '@kai-sync/handoff/registry'

export interface RelayServerOptions {
  host?: string
  /** 0 picks a free port. */
  port?: number
  store: UpdateStore
  limits?: Partial<RelayLimits>
  logger?: Logger
  fanout?: Fanout | undefined
  /** Nonces shared by every process of a deployment; per process by default. */
  nonces?: NonceCache | undefined
  federation?: Federation | undefined
  /** Where handoff tokens are filed; in memory by default (kai-relay's CLI files them on disk or in Redis, so a used token stays used). */
  handoffStore?: HandoffStore
  /** Benchmarks only: skip Ed25519 checks (structure and roster rules still apply). */
  unsafeSkipSignatures?: boolean
  /** False: record no metrics (NoMetrics), and GET /metrics answers 404 metrics_off. On by default. */
  metrics?: boolean
}

const TRUST_EVERY_SIGNATURE: SignatureVerifier = { name: 'noble', verify: async () => true }

/**
 * The relay: y-websocket over `ws`, one room per session id, every
 * connection admitted by a capability and the room's roster, every update
 * checked before it is merged, stored before it is broadcast.
 */
export class RelayServer {
  readonly metrics: Metrics
  readonly log: Logger
  readonly limits: RelayLimits
  private readonly http: Server
  private readonly wss: WebSocketServer
  private readonly rooms = new Map<string, Promise<Room>>()
  private readonly unloading = new Map<string, Promise<void>>()
  private readonly perAddress = new Map<string, number>()
  private readonly host: RoomHost
  private readonly nonces: NonceCache
  readonly handoff: HandoffEndpoints
  private connections = 0
  private stopping = false

  private constructor(
    private readonly options: RelayServerOptions,
    verifier: SignatureVerifier,
  ) {
    this.log = options.logger ?? createLogger()
    this.metrics = options.metrics === false ? new NoMetrics() : new PromMetrics()
    this.limits = { ...DEFAULT_LIMITS, ...options.limits }
    this.nonces = options.nonces ?? new MemoryNonceCache()
    this.host = {
      store: options.store,
      verifier,
      metrics: this.metrics,
      log: this.log,
      limits: this.limits,
      fanout: options.fanout,
      idle: (room) => void this.unload(room),
      clientsArrived: (room) => options.federation?.clientsArrived(room),
      clientsLeft: (room) => options.federation?.clientsLeft(room),
    }
    this.handoff = new HandoffEndpoints({
      verifier,
      mayHandOff: async (room, issuer) => (await this.room(room)).roster.isWriter(issuer),
      store: options.handoffStore,
      perMinute: this.limits.handoffPerMinute,
      log: this.log,
      metrics: this.metrics,
    })
    this.metrics.gauge('kai_relay_connections', 'Open client connections', () => this.connections)
    this.metrics.gauge('kai_relay_rooms', 'Rooms loaded in memory', () => this.rooms.size)
    // ws enforces a hard cap; the relay's own, lower check closes with 4413.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.limits.maxMessageBytes + 1024 * 1024, perMessageDeflate: false })
    // Node enforces these timeouts only when it checks its connections, by
    // default every 30 s: a socket that never finished its upgrade request
    // would stay open that long, whatever the flag says. Checked ten times
    // per timeout (at most once a second), it closes at the flag's time. (0
    // turns the timeouts off, and so the frequent check.)
    const preAuth = this.limits.preAuthTimeoutMs
    const checkEveryMs = preAuth === 0 ? 30_000 : Math.max(10, Math.min(1000, Math.floor(preAuth / 10)))
    this.http = createServer({ connectionsCheckingInterval: checkEveryMs }, (req, res) => this.serveHttp(req, res))
    this.http.headersTimeout = this.limits.preAuthTimeoutMs
    this.http.requestTimeout = this.limits.preAuthTimeoutMs
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.upgrade(req, socket, head))
    this.http.on('clientError', (_e, socket) => socket.destroy())
  }

  static async start(options: RelayServerOptions): Promise<RelayServer> {
    const verifier = options.unsafeSkipSignatures ? TRUST_EVERY_SIGNATURE : (sodiumVerifier() ?? nodeVerifier())
    const relay = new RelayServer(options, verifier)
    await new Promise<void>((resolve, reject) => {
      relay.http.once('error', reject)
      relay.http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve())
    })
    options.federation?.attach(relay.federationHost())
    relay.log.info('listening', { host: options.host ?? '127.0.0.1', port: relay.port, signatures: options.unsafeSkipSignatures ? 'skipped' : `verified (${verifier.name})`, metrics: relay.metrics.enabled ? 'on' : 'off' })
    return relay
  }

  get port(): number {
    const a = this.http.address()
    return typeof a === 'object' && a ? a.port : 0
  }

  get url(): string {
    return `ws://${this.options.host ?? '127.0.0.1'}:${this.port}`
  }

  private serveHttp(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]
    // As sent: the logger's rules (see @kai-sync/log) strip the query and censor credentials.
    this.log.debug('request', { method: req.method, url: req.url, headers: req.headers })
    if (req.method === 'GET' && path === '/healthz') {
      const ok = !this.stopping
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ status: ok ? 'ok' : 'stopping', rooms: this.rooms.size, connections: this.connections }))
    } else if (req.method === 'GET' && path === '/metrics' && !this.metrics.enabled) {
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ code: 'metrics_off', message: 'this relay records no metrics (it was started with --metrics off)' }))
    } else if (req.method === 'GET' && path === '/metrics') {
      this.metrics.render().then(
        (text) => {
          res.writeHead(200, { 'content-type': this.metrics.contentType })
          res.end(text)
        },
        (e: unknown) => {
          this.log.error('metrics failed', { error: (e as Error).message })
          res.writeHead(500, { 'content-type': 'text/plain' })
          res.end()
        },
      )
    } else if (this.handoff.handles(req)) {
      // An unexpected throw here must not become an unhandled rejection that ends the process.
      this.handoff.serve(req, res).catch((e: unknown) => {
        this.log.error('handoff request failed', { error: (e as Error).message })
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' })
        res.end()
      })
    } else if (req.method === 'GET' && path === '/federation/key' && this.options.federation) {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(this.options.federation.publicKeyText)
    } else {
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ code: 'not_found', message: 'GET /healthz, GET /metrics, POST /session/:id/handoff, POST /session/:id/resume, or a WebSocket upgrade to /<session id>' }))
    }
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const address = req.socket.remoteAddress ?? 'unknown'
    // The URL carries the capability: the logger's rules strip its query.
    this.log.debug('upgrade', { url: req.url, headers: req.headers, address })
    let refusal: Refusal | null = null
    let room: Room | null = null
    let device: Uint8Array | null = null
    let wantsAck = false
    let notYetMember = false
    let enrolling = false
    try {
      const url = new URL(req.url ?? '/', 'http://relay')
      const name = url.pathname.slice(1)
      if (this.stopping) throw new Refusal(CloseCode.TooMany, 'the relay is shutting down')
      if (!ROOM_NAME.test(name)) throw new Refusal(CloseCode.BadRequest, 'the path must be /<session id> (base64url)')
      if ((this.perAddress.get(address) ?? 0) >= this.limits.maxRoomsPerClient) throw new Refusal(CloseCode.TooMany, 'too many rooms open from this address')
      wantsAck = url.searchParams.get(ACK_PARAM) === '1'
      const admission = await admit(name, url.searchParams, { verifier: this.host.verifier, nonces: this.nonces, maxLifetimeMs: this.limits.maxCapabilityLifetimeMs })
      const peer = url.searchParams.get(PEER_PARAM) === '1'
      if (peer) {
        if (!this.options.federation || !(await this.options.federation.isPeerKey(admission.device))) throw new Refusal(CloseCode.Forbidden, 'not a configured peer relay')
      } else {
        device = admission.device
      }
      room = await this.room(name)
      if (device && room.roster.hasGenesis) {
        const role = room.roster.member(device)?.role
        if (role === 'removed') throw new Refusal(CloseCode.Forbidden, 'this device was removed from the session')
        if (!role) {
          // A handoff target must sync before it can enroll itself with the
          // invite, and its entry travels on this very connection: the grace
          // (which lets it hear nothing) would only run out. It resumed with a
          // token the relay burned, so it syncs now; see RoomAdmission.awaitEnrollment.
          if (await this.handoff.registry.enrollee(name, device)) enrolling = true
          else if (this.limits.membershipGraceMs === 0) throw new Refusal(CloseCode.Forbidden, 'this device is not in the session\'s roster')
          else notYetMember = true
        }
      }
    } catch (e) {
      // Not the client's fault (its storage or Redis failed): it may come back.
      refusal = e instanceof Refusal ? e : new Refusal(CloseCode.TryAgainLater, 'the relay could not serve the room right now; reconnect later')
      if (!(e instanceof Refusal)) this.log.error('upgrade failed', { error: (e as Error).message })
    }
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      // The room may have gone idle and unloaded while this connection was
      // checked (a handoff look-up in Redis): it must not join that room,
      // which hears nothing more. Reconnecting loads it again.
      if (!refusal && room?.unloaded) refusal = new Refusal(CloseCode.TryAgainLater, 'the room was unloading; reconnect')
      if (refusal || !room || this.stopping) {
        const r = refusal ?? new Refusal(CloseCode.TooMany, 'the relay is shutting down')
        this.metrics.inc('kai_relay_rejections_total', { code: r.code })
        this.log.info('connection refused', { code: r.code, reason: r.reason, address })
        ws.close(r.code, truncate(r.reason))
        return
      }
      this.accept(ws, room, device, wantsAck, address, notYetMember, enrolling)
    })
  }

  private accept(ws: WebSocket, room: Room, device: Uint8Array | null, wantsAck: boolean, address: string, notYetMember: boolean, enrolling: boolean): void {
    this.connections++
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1)
    this.metrics.inc('kai_relay_connections_total')
    const label = deviceTag(device)
    this.log.debug('connected', { room: room.name, device: label })
    new Connection(ws, room, device, wantsAck, label, notYetMember, enrolling, this.limits, this.metrics, () => {
      this.connections--
      const n = (this.perAddress.get(address) ?? 1) - 1
      if (n === 0) this.perAddress.delete(address)
      else this.perAddress.set(address, n)
    })
  }

  /** The loaded room, loading it (after any unload of the same room finishes). */
  room(name: string): Promise<Room> {
    let room = this.rooms.get(name)
    if (!room) {
      const previous = this.unloading.get(name) ?? Promise.resolve()
      room = previous.then(() => Room.load(name, this.host))
      this.rooms.set(name, room)
      room.catch(() => this.rooms.delete(name))
    }
    return room
  }

  private async unload(room: Room): Promise<void> {
    if (room.size > 0 || (await this.rooms.get(room.name)) !== room) return
    this.rooms.delete(room.name)
    const done = room.unload()
    this.unloading.set(room.name, done)
    await done
    if (this.unloading.get(room.name) === done) this.unloading.delete(room.name)
  }

  private federationHost() {
    return { room: (name: string) => this.room(name), host: this.host, log: this.log }
  }

  /** Stops accepting, closes every connection with 1001, stores every room, and closes storage. */
  async close(): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    this.log.info('shutting down', { rooms: this.rooms.size, connections: this.connections })
    await this.options.federation?.close()
    this.handoff.close()
    const rooms = await Promise.allSettled([...this.rooms.values()])
    this.rooms.clear()
    await Promise.all(rooms.flatMap((r) => (r.status === 'fulfilled' ? [r.value.unload(CloseCode.GoingAway, 'the relay is restarting')] : [])))
    await Promise.all(this.unloading.values())
    for (const ws of this.wss.clients) ws.terminate()
    await new Promise<void>((resolve) => this.http.close(() => resolve()))
    this.wss.close()
    this.nonces.close()
    await this.options.fanout?.close()
    await this.options.store.close()
    await this.options.handoffStore?.close?.()
    await (this.host.verifier as Partial<RelayVerifier>).close?.()
    this.log.info('stopped')
  }
}
