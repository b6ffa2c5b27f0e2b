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
  /** Writes of this turn of the event loop, committed as one batch (group commit). */
  private pending: { ops: BatchOp[]; done: Promise<void> } | null = null

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
   * Every write issued in one turn of the event loop goes into one LevelDB
   * batch: under load, one native call and one log write for many rooms.
   * A batch is atomic, so each caller's operations still land together.
   */
  private write(ops: BatchOp[]): Promise<void> {
    if (!this.pending) {
      const pending: { ops: BatchOp[]; done: Promise<void> } = { ops: [], done: Promise.resolve() }
      pending.done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.pending = null
        return this.db.batch(pending.ops, { sync: this.sync })
      })
      this.pending = pending
    }
    this.pending.ops.push(...ops)
    return this.pending.done
  }

  async rooms(): Promise<string[]> {
    const out: string[] = []
    for await (const key of this.db.keys({ gte: 'r:', lt: 'r;' })) out.push(decodeURIComponent(key.slice(2)))
    return out
  }

  async close(): Promise<void> {
    await this.pending?.done.catch(() => {})
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
