import type { WebSocket } from 'ws'
import { CloseCode, Refusal } from './close-codes'
import { RateLimiter, type RelayLimits } from './limits'
import type { CounterSeries } from './counter-totals'
import type { Metrics } from './metrics'
import type { Participant } from './participant'
import type { Room } from './room'
import type { PreparedUpdate } from './update-guard'

const MAX_REASON_BYTES = 123 // the WebSocket protocol's limit for a close reason

/** A client's WebSocket in one room, with its limits. */
export class Connection implements Participant {
  readonly kind: 'client' | 'peer-in'
  readonly awarenessIds = new Set<number>()
  deferred: PreparedUpdate[] = []
  awaitingGenesis: boolean
  awaitingMembership: boolean
  enrolling: boolean
  waiting: Uint8Array[] = []
  private readonly rate: RateLimiter
  private readonly byteRate: RateLimiter
  /** Counted per frame: bound once (see Metrics.counter). */
  private readonly bytesIn: CounterSeries
  private readonly bytesOut: CounterSeries
  private preAuthTimer: ReturnType<typeof setTimeout> | undefined
  private closing = false
  /** True while the socket is corked until the end of this tick (see send). */
  private corked = false

  constructor(
    private readonly ws: WebSocket,
    private readonly room: Room,
    readonly device: Uint8Array | null,
    readonly wantsAck: boolean,
    readonly label: string,
    notYetMember: boolean,
    enrolling: boolean,
    private readonly limits: RelayLimits,
    metrics: Metrics,
    onClose: () => void,
  ) {
    this.bytesIn = metrics.counter('kai_relay_bytes_received_total')
    this.bytesOut = metrics.counter('kai_relay_bytes_sent_total')
    this.kind = device ? 'client' : 'peer-in'
    this.rate = new RateLimiter(limits.messagesPerSecond, limits.messageBurst)
    // A frame the size limit lets through must fit a full bucket.
    this.byteRate = new RateLimiter(limits.bytesPerSecond, Math.max(limits.byteBurst, limits.maxMessageBytes))
    this.awaitingGenesis = device !== null && !room.roster.hasGenesis
    this.awaitingMembership = notYetMember
    this.enrolling = enrolling
    if (this.awaitingGenesis) {
      this.preAuthTimer = setTimeout(() => {
        if (this.awaitingGenesis) room.refuse(this, new Refusal(CloseCode.Unauthenticated, 'no genesis arrived in time for a room that does not exist'))
      }, limits.preAuthTimeoutMs)
    }
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer | ArrayBuffer | Buffer[], isBinary))
    ws.on('close', () => {
      clearTimeout(this.preAuthTimer)
      room.leave(this)
      onClose()
    })
    ws.on('error', () => {}) // a broken socket closes; 'close' does the cleanup
    room.join(this)
  }

  private onMessage(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    if (this.closing) return
    const bytes = toBytes(data)
    this.bytesIn.add(bytes.length)
    try {
      if (!isBinary) throw new Refusal(CloseCode.BadRequest, 'the y-websocket protocol uses binary frames')
      const max = this.awaitingGenesis || this.awaitingMembership ? Math.min(this.limits.maxMessageBytesBeforeGenesis, this.limits.maxMessageBytes) : this.limits.maxMessageBytes
      if (bytes.length > max) throw new Refusal(CloseCode.TooLarge, `a frame over ${max} bytes`)
      if (!this.rate.take()) throw new Refusal(CloseCode.TooMany, 'over the message rate limit')
      if (!this.byteRate.take(bytes.length)) throw new Refusal(CloseCode.TooMany, 'over the byte rate limit')
      this.room.receive(this, bytes)
    } catch (e) {
      this.room.refuse(this, e instanceof Refusal ? e : new Refusal(CloseCode.BadRequest, 'the message does not decode'))
    }
  }

  send(message: Uint8Array): void {
    if (this.closing || this.ws.readyState !== this.ws.OPEN) return
    if (this.ws.bufferedAmount > this.limits.maxBufferedBytes) {
      this.room.refuse(this, new Refusal(CloseCode.TooMany, 'the client reads too slowly'))
      return
    }
    this.bytesOut.add(message.length)
    // A group commit releases many updates at once, often several for one
    // socket: corked until the tick ends, they leave in one writev instead
    // of one syscall (and one TCP segment) each. Order is unchanged. `ws`
    // exposes no cork of its own; its socket is the net.Socket underneath.
    const socket = (this.ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket
    if (!this.corked && socket) {
      this.corked = true
      socket.cork()
      process.nextTick(() => {
        this.corked = false
        socket.uncork()
      })
    }
    this.ws.send(message)
  }

  close(code: number, reason: string): void {
    if (this.closing) return
    this.closing = true
    clearTimeout(this.preAuthTimer)
    this.ws.close(code, truncate(reason))
    // A client that does not answer the close handshake is cut off.
    setTimeout(() => this.ws.terminate(), 2000).unref()
  }
}

function toBytes(data: Buffer | ArrayBuffer | Buffer[]): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data))
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

export function truncate(reason: string): string {
  const bytes = Buffer.from(reason)
  return bytes.length <= MAX_REASON_BYTES ? reason : bytes.subarray(0, MAX_REASON_BYTES - 3).toString('utf8').replace(/\uFFFD$/, '') + '...'
}
