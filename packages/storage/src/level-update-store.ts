import { ClassicLevel } from 'classic-level'
import { KaiError } from '@kai-sync/model'
import type { StoredUpdate, UpdateKey, UpdateStore } from './update-store'

// Layout: `u:<room>:<seq as 16 hex digits>` -> update, and `r:<room>` -> ''
// so rooms() need not scan updates. Rooms are URI-encoded, so ':' never
// appears inside one and one room's range never holds another's keys.

type BatchOp = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string }

const roomPart = (room: string) => encodeURIComponent(room)
const updatePrefix = (room: string) => `u:${roomPart(room)}:`

/**
 * The embedded store: LevelDB in a directory, one process at a time (LevelDB
 * locks it). A write is in the operating system's hands when it resolves, so
 * it survives `kill -9`; pass `sync: true` to also survive power loss, at the
 * cost of an fsync per update.
 */
export class LevelUpdateStore implements UpdateStore {
  private readonly next = new Map<string, Promise<{ seq: number }>>()
  /** Rooms whose `r:` key this process already wrote. */
  private readonly indexed = new Set<string>()
  /** The batch being written, and the writes waiting for it to finish. */
  private inFlight: Promise<void> | null = null
  private pending: { ops: BatchOp[]; done: Promise<void>; start: () => void } | null = null

  private constructor(
    private readonly db: ClassicLevel<string, Uint8Array>,
    private readonly sync: boolean,
  ) {}

  static async open(directory: string, options: { sync?: boolean } = {}): Promise<LevelUpdateStore> {
    const db = new ClassicLevel<string, Uint8Array>(directory, { keyEncoding: 'utf8', valueEncoding: 'view' })
    try {
      await db.open()
    } catch (cause) {
      const locked = (cause as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED'
      throw new KaiError('unavailable', locked ? `${directory} is in use by another process` : `cannot open the store in ${directory}`, { cause })
    }
    return new LevelUpdateStore(db, options.sync ?? false)
  }

  async load(room: string): Promise<StoredUpdate[]> {
    const prefix = updatePrefix(room)
    const out: StoredUpdate[] = []
    for await (const [key, value] of this.db.iterator({ gte: prefix, lt: prefix + '\xff' })) {
      out.push({ key: key.slice(prefix.length) as UpdateKey, update: value })
    }
    return out
  }

  async append(room: string, update: Uint8Array): Promise<UpdateKey> {
    const key = await this.nextKey(room)
    await this.write([{ type: 'put', key: updatePrefix(room) + key, value: update }, ...this.indexOps(room)])
    return key
  }

  async replace(room: string, keys: readonly UpdateKey[], merged: Uint8Array): Promise<UpdateKey> {
    const key = await this.nextKey(room)
    const prefix = updatePrefix(room)
    await this.write([...keys.map((k) => ({ type: 'del' as const, key: prefix + k })), { type: 'put' as const, key: prefix + key, value: merged }, ...this.indexOps(room)])
    return key
  }

  private indexOps(room: string): BatchOp[] {
    if (this.indexed.has(room)) return []
    this.indexed.add(room)
    return [{ type: 'put', key: `r:${roomPart(room)}`, value: new Uint8Array(0) }]
  }

  /**
   * Group commit: a write goes to LevelDB at once when none is in flight;
   * writes that arrive while one is in flight wait and go together in the
   * next batch. Idle, a write costs one batch; under load, one native call
   * and one log write carry many rooms' updates. A batch is atomic, so each
   * caller's operations still land together.
   */
  private write(ops: BatchOp[]): Promise<void> {
    if (!this.inFlight) {
      this.inFlight = this.db.batch(ops, { sync: this.sync }).finally(() => this.next_())
      return this.inFlight
    }
    let pending = this.pending
    if (!pending) {
      let start!: () => void
      const gate = new Promise<void>((resolve) => (start = resolve))
      const waiting: BatchOp[] = []
      pending = { ops: waiting, done: gate.then(() => this.db.batch(waiting, { sync: this.sync })), start }
      this.pending = pending
    }
    pending.ops.push(...ops)
    return pending.done
  }

  /** When a batch lands, the writes that waited for it go as the next one. */
  private next_(): void {
    const pending = this.pending
    this.pending = null
    if (!pending) {
      this.inFlight = null
      return
    }
    this.inFlight = pending.done.catch(() => {}).finally(() => this.next_())
    pending.start()
  }

  async rooms(): Promise<string[]> {
    const out: string[] = []
    for await (const key of this.db.keys({ gte: 'r:', lt: 'r;' })) out.push(decodeURIComponent(key.slice(2)))
    return out
  }

  async close(): Promise<void> {
    while (this.inFlight) await this.inFlight.catch(() => {})
    await this.db.close()
  }

  /** Sequence numbers per room: the last stored one plus one, counted in memory after the first look. */
  private async nextKey(room: string): Promise<UpdateKey> {
    let counter = this.next.get(room)
    if (!counter) {
      const prefix = updatePrefix(room)
      counter = (async () => {
        let seq = 0
        for await (const key of this.db.keys({ gte: prefix, lt: prefix + '\xff', reverse: true, limit: 1 })) {
          seq = Number.parseInt(key.slice(prefix.length), 16) + 1
        }
        return { seq }
      })()
      this.next.set(room, counter)
    }
    const c = await counter
    const seq = c.seq++
    return seq.toString(16).padStart(16, '0') as UpdateKey
  }
}
