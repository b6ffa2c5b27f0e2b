import type { Redis } from 'ioredis'
import { randomBytes, toBase64Url, equalBytes } from '@kai-sync/crypto'
import { KaiError } from '@kai-sync/model'
import type { Fanout, FanoutHandlers } from './fanout'
import type { NonceCache } from './nonce-cache'
import type { Logger } from './log'
import { RedisHandoffStore } from './redis-handoff-store'

// One Redis channel per room. A message is: this process's 16-byte id (so
// a process ignores its own), a kind byte, and the Yjs or awareness update.
// Only updates that a relay already checked and stored are published, so a
// process applies what arrives here without checking it again.
//
// Pub/sub delivers nothing published while a subscriber is disconnected, and
// a publish fails while the publisher is. Every update is stored before it
// is published, so a gap heals by reloading from storage: when this
// process's subscription comes back, each of its rooms reloads; when its
// publishing connection comes back, it asks every process to reload the
// rooms it has open (a resync message), as its publishes may have failed.

const PREFIX = 'kai-relay:'
const KIND_UPDATE = 0
const KIND_AWARENESS = 1
const KIND_RESYNC = 2
const ID_BYTES = 16

export class RedisFanout implements Fanout {
  private readonly id = randomBytes(ID_BYTES)
  private readonly handlers = new Map<string, FanoutHandlers>()
  readonly nonces: NonceCache
  /** Handoff tokens, shared by every process: registered through one, burned through any. */
  readonly handoffs: RedisHandoffStore

  private constructor(
    private readonly pub: Redis,
    private readonly sub: Redis,
    private readonly log: Logger,
  ) {
    sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.deliver(channel.toString(), message))
    whenBack(sub, () => void this.resubscribe())
    whenBack(pub, () => {
      for (const room of this.handlers.keys()) this.publish(room, KIND_RESYNC, new Uint8Array(0))
    })
    const pubClient = pub
    this.handoffs = new RedisHandoffStore(pub)
    this.nonces = {
      // SET NX: the first relay of the deployment to see a nonce wins.
      async claim(nonce, expiresAt) {
        const ttl = Math.max(1, expiresAt - Date.now())
        return (await pubClient.set(`${PREFIX}nonce:${toBase64Url(nonce)}`, '1', 'PX', ttl, 'NX')) === 'OK'
      },
      close() {},
    }
  }

  static async connect(url: string, log: Logger): Promise<RedisFanout> {
    const options = { lazyConnect: true, maxRetriesPerRequest: 3, enableOfflineQueue: true }
    // Loaded here, not at the top: a relay without Redis never pays for ioredis (bench/README.md, "The relay's memory").
    const { Redis: Client } = await import('ioredis')
    const pub = new Client(url, options)
    const sub = new Client(url, options)
    for (const c of [pub, sub]) c.on('error', (e: Error) => log.warn('redis error', { error: e.message }))
    try {
      await Promise.all([pub.connect(), sub.connect()])
    } catch (cause) {
      pub.disconnect()
      sub.disconnect()
      throw new KaiError('unavailable', `cannot reach Redis (${(cause as Error).message})`, { cause })
    }
    return new RedisFanout(pub, sub, log)
  }

  private deliver(channel: string, message: Buffer): void {
    if (!channel.startsWith(PREFIX) || message.length <= ID_BYTES) return
    if (equalBytes(message.subarray(0, ID_BYTES), this.id)) return
    const handlers = this.handlers.get(channel.slice(PREFIX.length))
    if (!handlers) return
    const payload = new Uint8Array(message.buffer, message.byteOffset + ID_BYTES + 1, message.length - ID_BYTES - 1)
    if (message[ID_BYTES] === KIND_UPDATE) handlers.update(payload)
    else if (message[ID_BYTES] === KIND_AWARENESS) handlers.awareness(payload)
    else if (message[ID_BYTES] === KIND_RESYNC) handlers.resync()
  }

  /** Subscribed again to every room (ioredis does too; this says when it is done), then each reloads. */
  private async resubscribe(): Promise<void> {
    const rooms = [...this.handlers.keys()]
    this.log.warn('redis subscription restored; rooms reload from storage', { rooms: rooms.length })
    if (rooms.length === 0) return
    try {
      await this.sub.subscribe(...rooms.map((r) => PREFIX + r))
    } catch (e) {
      // Dropped again: the next reconnection comes back here.
      this.log.warn('redis resubscribe failed', { error: (e as Error).message })
      return
    }
    for (const room of rooms) this.handlers.get(room)?.resync()
  }

  async subscribe(room: string, handlers: FanoutHandlers): Promise<void> {
    this.handlers.set(room, handlers)
    // Without Redis the room still loads from storage; the reconnection
    // subscribes it and reloads it (see resubscribe).
    await this.sub.subscribe(PREFIX + room).catch((e: Error) => this.log.warn('redis subscribe failed', { room, error: e.message }))
  }

  async unsubscribe(room: string): Promise<void> {
    this.handlers.delete(room)
    await this.sub.unsubscribe(PREFIX + room).catch(() => {})
  }

  private publish(room: string, kind: number, payload: Uint8Array): void {
    const message = Buffer.allocUnsafe(ID_BYTES + 1 + payload.length)
    message.set(this.id, 0)
    message[ID_BYTES] = kind
    message.set(payload, ID_BYTES + 1)
    this.pub.publish(PREFIX + room, message).catch((e: Error) => this.log.warn('redis publish failed', { room, error: e.message }))
  }

  publishUpdate(room: string, update: Uint8Array): void {
    this.publish(room, KIND_UPDATE, update)
  }

  publishAwareness(room: string, update: Uint8Array): void {
    this.publish(room, KIND_AWARENESS, update)
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.sub.quit(), this.pub.quit()])
  }
}

/** Calls `back` each time the connection is ready again after it was lost (not on the first connect). */
function whenBack(redis: Redis, back: () => void): void {
  let lost = false
  redis.on('close', () => (lost = true))
  redis.on('ready', () => {
    if (!lost) return
    lost = false
    back()
  })
}
