import WebSocket from 'ws'
import { CAPABILITY_PARAM, capabilityToParam, signCapability } from '@kai-sync/crypto/capability'
import { FrameSource, frameId, syncStep1Empty, updateFrame, type BenchRoom, type FrameTapes, type Frames } from './frames'
import type { BenchServer } from './servers'

// The load: N rooms with 2 clients each. Every frame a client sends is
// timed until the other client of its room receives the relay's broadcast.

interface Client {
  ws: WebSocket
  source: Frames
  peer: Client | null
  queue: Uint8Array[]
  /** Send time per clock of this client, for the frames in flight. */
  sentAt: Map<number, number>
  closedWith: number | null
}

export interface PhaseResult {
  offeredPerSecond: number | 'closed loop'
  deliveredPerSecond: number
  sent: number
  delivered: number
  lost: number
  p50Ms: number
  p99Ms: number
  errors: number
}

export class Load {
  readonly clients: Client[] = []
  private latencies: number[] = []
  private delivered = 0
  private onDelivered: ((c: Client) => void) | null = null

  private constructor(
    private readonly server: BenchServer,
    private readonly tapes: FrameTapes | undefined,
  ) {}

  /** `tapes`: each client sends the frames it sent in the last run (against another fresh relay) again, instead of new ones. */
  static async connect(server: BenchServer, rooms: BenchRoom[], tapes?: FrameTapes): Promise<Load> {
    const load = new Load(server, tapes)
    // A few rooms at a time, so the setup does not look like a flood.
    for (let i = 0; i < rooms.length; i += 50) await Promise.all(rooms.slice(i, i + 50).map((r) => load.openRoom(r)))
    return load
  }

  private async url(room: BenchRoom): Promise<string> {
    const base = `${this.server.url}/${room.genesis.sessionId}`
    if (!this.server.kai) return base
    return `${base}?${CAPABILITY_PARAM}=${capabilityToParam(await signCapability({ room: room.genesis.sessionId }, room.owner))}`
  }

  private open(url: string, source: Frames): Promise<Client> {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    const client: Client = { ws, source, peer: null, queue: [], sentAt: new Map(), closedWith: null }
    ws.binaryType = 'nodebuffer'
    ws.on('close', (code) => {
      client.closedWith = code
    })
    ws.on('error', () => {})
    ws.on('message', (data: Buffer) => {
      const id = frameId(data)
      if (!id) return
      const from = client.peer
      if (!from || id.client !== from.source.clientId) return
      const t = from.sentAt.get(id.clock)
      if (t === undefined) return
      from.sentAt.delete(id.clock)
      this.latencies.push(performance.now() - t)
      this.delivered++
      this.onDelivered?.(from)
    })
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client))
      ws.once('close', (code) => reject(new Error(`${this.server.name} closed a setup connection with ${code}`)))
    })
  }

  private async openRoom(room: BenchRoom): Promise<void> {
    const a = await this.open(await this.url(room), this.tapes?.replay(room, 0) ?? new FrameSource(room))
    a.ws.send(syncStep1Empty())
    a.ws.send(updateFrame(room.setup))
    const b = await this.open(await this.url(room), this.tapes?.replay(room, 1) ?? new FrameSource(room))
    // B's sync step 2 comes after the relay merged A's setup (one queue per room).
    const synced = new Promise<void>((resolve) => {
      const onMessage = (data: Buffer) => {
        if (data[0] === 0 && data[1] === 1) {
          b.ws.off('message', onMessage)
          resolve()
        }
      }
      b.ws.on('message', onMessage)
    })
    b.ws.send(syncStep1Empty())
    await synced
    a.peer = b
    b.peer = a
    this.clients.push(a, b)
  }

  /** Frames one client needs for `rate` msg/s in all over `seconds`. */
  framesFor(rate: number, seconds: number): number {
    return Math.ceil((rate * seconds) / this.clients.length) + 2
  }

  /** Encodes every frame a phase may need before it starts (not timed). */
  async prepare(framesPerClient: number): Promise<void> {
    // Frames left over from the last phase go first: skipping a clock would leave a gap.
    for (let i = 0; i < this.clients.length; i += 16) {
      await Promise.all(
        this.clients.slice(i, i + 16).map(async (c) => {
          if (c.queue.length < framesPerClient) c.queue.push(...(await c.source.take(framesPerClient - c.queue.length)))
        }),
      )
    }
  }

  private send(c: Client): boolean {
    const frame = c.queue.shift()
    if (!frame || c.ws.readyState !== WebSocket.OPEN) return false
    const id = frameId(frame)!
    c.sentAt.set(id.clock, performance.now())
    c.ws.send(frame)
    return true
  }

  private reset(): void {
    this.latencies = []
    this.delivered = 0
    for (const c of this.clients) c.sentAt.clear()
  }

  private result(offered: PhaseResult['offeredPerSecond'], sent: number, seconds: number): PhaseResult {
    const sorted = this.latencies.sort((x, y) => x - y)
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN
    return {
      offeredPerSecond: offered,
      deliveredPerSecond: Math.round(this.delivered / seconds),
      sent,
      delivered: this.delivered,
      lost: sent - this.delivered,
      p50Ms: round(at(0.5)),
      p99Ms: round(at(0.99)),
      errors: this.clients.filter((c) => c.closedWith !== null).length,
    }
  }

  /** Open loop: `rate` messages per second in all, spread over the clients, for `seconds`. */
  async openLoop(rate: number, seconds: number, drainMs = 1500): Promise<PhaseResult> {
    this.reset()
    const start = performance.now()
    let sent = 0
    let next = 0
    await new Promise<void>((resolve) => {
      const tick = setInterval(() => {
        const elapsed = (performance.now() - start) / 1000
        const due = Math.min(rate * seconds, Math.floor(rate * elapsed))
        while (sent < due) {
          if (this.send(this.clients[next++ % this.clients.length]!)) sent++
          else break
        }
        if (elapsed >= seconds) {
          clearInterval(tick)
          resolve()
        }
      }, 2)
    })
    await this.drain(sent, drainMs)
    return this.result(rate, sent, seconds)
  }

  /** Closed loop: each client keeps `window` frames in flight; how many get through per second. */
  async closedLoop(window: number, seconds: number): Promise<PhaseResult> {
    this.reset()
    let sent = 0
    let running = true
    this.onDelivered = (c) => {
      if (running && this.send(c)) sent++
    }
    const start = performance.now()
    for (const c of this.clients) for (let i = 0; i < window; i++) if (this.send(c)) sent++
    await new Promise((r) => setTimeout(r, seconds * 1000))
    running = false
    const elapsed = (performance.now() - start) / 1000
    const deliveredInWindow = this.delivered
    this.onDelivered = null
    await this.drain(sent, 2000)
    const r = this.result('closed loop', sent, elapsed)
    r.deliveredPerSecond = Math.round(deliveredInWindow / elapsed)
    return r
  }

  private async drain(sent: number, ms: number): Promise<void> {
    const deadline = performance.now() + ms
    while (this.delivered < sent && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  }

  close(): void {
    for (const c of this.clients) c.ws.terminate()
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100
}
