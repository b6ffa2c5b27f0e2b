import { ClassicLevel } from 'classic-level'
import { KaiError } from '@kai-sync/model'
import type { StoredUpdate, UpdateKey, UpdateStore } from './update-store'
import { frameUpdates, unframeUpdates } from './framed-record'

// Layout: `u:<room>:<seq as 16 hex digits>` -> one update, or
// `u:<room>:<seq>+` -> several updates of the room framed in one value, and
// `r:<room>` -> '' so rooms() need not scan updates. Rooms are URI-encoded,
// so ':' never appears inside one and one room's range never holds another's
// keys. A record's key names every update in it: appends that went to disk
// together share it, and a replace removes them together.

type BatchOp = { type: 'put'; key: string; value: Uint8Array }

const SEQ_DIGITS = 16
const FRAMED = '+'
// Values are mostly ciphertext, which does not compress: Snappy would only
// spend CPU. A larger memtable means fewer, larger level-0 files, so less
// compaction work in the background for the same writes.
const TUNING = { compression: false, writeBufferSize: 32 * 1024 * 1024, maxFileSize: 8 * 1024 * 1024 }

const SYNC = { sync: true } as const

const roomPart = (room: string) => encodeURIComponent(room)
const updatePrefix = (room: string) => `u:${roomPart(room)}:`
const seqKey = (seq: number) => seq.toString(16).padStart(SEQ_DIGITS, '0')

/** A write waiting for the batch in flight: other rooms' puts, and each room's appends. */
interface Pending {
  puts: BatchOp[]
  appends: Map<string, { updates: Uint8Array[]; key: UpdateKey | null }>
  done: Promise<void>
  start: () => void
}

/**
 * The embedded store: LevelDB in a directory, one process at a time (LevelDB
 * locks it). A write is in the operating system's hands when it resolves, so
 * it survives `kill -9`; pass `sync: true` to also survive power loss, at the
 * cost of an fsync per batch.
 */
export class LevelUpdateStore implements UpdateStore {
  private readonly next = new Map<string, Promise<{ seq: number }>>()
  private readonly counters = new Map<string, { seq: number }>()
  /** Rooms whose `r:` key this process already wrote. */
  private readonly indexed = new Set<string>()
  /** The batch being written, and the writes waiting for it to finish. */
  private inFlight: Promise<void> | null = null
  private pending: Pending | null = null

  private constructor(
    private readonly db: ClassicLevel<string, Uint8Array>,
    private readonly sync: boolean,
  ) {}

  static async open(directory: string, options: { sync?: boolean } = {}): Promise<LevelUpdateStore> {
    const db = new ClassicLevel<string, Uint8Array>(directory, { keyEncoding: 'utf8', valueEncoding: 'view', ...TUNING })
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
    for await (const [full, value] of this.db.iterator({ gte: prefix, lt: prefix + '\xff' })) {
      const key = full.slice(prefix.length) as UpdateKey
      if (!key.endsWith(FRAMED)) {
        out.push({ key, update: value })
        continue
      }
      for (const update of unframeUpdates(value)) out.push({ key, update })
    }
    return out
  }

  /**
   * Stores an update. Appends to one room that arrive while a batch is on
   * its way to disk go in the next batch as one record, under one key:
   * under load, one LevelDB operation carries many updates.
   */
  async append(room: string, update: Uint8Array): Promise<UpdateKey> {
    await this.counter(room)
    const pending = this.inFlight ? this.nextBatch() : null
    if (!pending) {
      const key = this.takeSeq(room) as UpdateKey
      await this.write([{ type: 'put', key: updatePrefix(room) + key, value: update }, ...this.indexOps(room)])
      return key
    }
    let entry = pending.appends.get(room)
    if (!entry) pending.appends.set(room, (entry = { updates: [], key: null }))
    entry.updates.push(update)
    await pending.done
    return entry.key!
  }

  /**
   * Stores `merged`, then removes the replaced records. Not one atomic
   * step, but never a loss: a crash between the two leaves both, and
   * loading merges them (Yjs updates are idempotent). The removal is one
   * range clear per run of consecutive keys, done by LevelDB, not here.
   */
  async replace(room: string, keys: readonly UpdateKey[], merged: Uint8Array, options: { onStored?: () => void } = {}): Promise<UpdateKey> {
    await this.counter(room)
    const key = this.takeSeq(room) as UpdateKey
    const prefix = updatePrefix(room)
    await this.write([{ type: 'put', key: prefix + key, value: merged }, ...this.indexOps(room)])
    options.onStored?.()
    for (const [from, to] of runs(keys)) await this.db.clear({ gte: prefix + seqKey(from), lt: prefix + seqKey(to + 1) })
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
      this.inFlight = this.commit(ops).finally(() => this.next_())
      return this.inFlight
    }
    const pending = this.nextBatch()
    pending.puts.push(...ops)
    return pending.done
  }

  /**
   * One write to LevelDB. A lone record goes as a put, and no options
   * object goes unless it says sync: abstract-level copies a batch's options
   * into every operation and checks each on this thread, which cost an
   * idle relay 45-60 µs a write (bench/README.md, "a write at 250 msg/s").
   */
  private commit(ops: BatchOp[]): Promise<void> {
    const [op] = ops
    if (ops.length === 1) return this.sync ? this.db.put(op!.key, op!.value, SYNC) : this.db.put(op!.key, op!.value)
    return this.sync ? this.db.batch(ops, SYNC) : this.db.batch(ops)
  }

  private nextBatch(): Pending {
    if (this.pending) return this.pending
    let start!: () => void
    const gate = new Promise<void>((resolve) => (start = resolve))
    const pending: Pending = { puts: [], appends: new Map(), done: gate.then(() => this.commit(this.opsOf(pending))), start }
    this.pending = pending
    return pending
  }

  /** The batch's operations: its puts, and one record per room it appends to. */
  private opsOf(pending: Pending): BatchOp[] {
    const ops = pending.puts
    for (const [room, entry] of pending.appends) {
      // The room's counter was read before the append joined the batch.
      const seq = this.takeSeq(room)
      if (entry.updates.length === 1) {
        entry.key = seq as UpdateKey
        ops.push({ type: 'put', key: updatePrefix(room) + seq, value: entry.updates[0]! })
      } else {
        entry.key = (seq + FRAMED) as UpdateKey
        ops.push({ type: 'put', key: updatePrefix(room) + entry.key, value: frameUpdates(entry.updates) })
      }
      ops.push(...this.indexOps(room))
    }
    return ops
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

  async deleteRoom(room: string): Promise<void> {
    // After the writes in flight, so none lands after the clear; the index key last.
    while (this.inFlight) await this.inFlight.catch(() => {})
    const prefix = updatePrefix(room)
    await this.db.clear({ gte: prefix, lt: prefix + '\xff' })
    await this.db.del(`r:${roomPart(room)}`)
    this.indexed.delete(room)
    this.next.delete(room)
    this.counters.delete(room)
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
  private counter(room: string): Promise<{ seq: number }> {
    let counter = this.next.get(room)
    if (!counter) {
      const prefix = updatePrefix(room)
      counter = (async () => {
        let seq = 0
        for await (const key of this.db.keys({ gte: prefix, lt: prefix + '\xff', reverse: true, limit: 1 })) {
          seq = Number.parseInt(key.slice(prefix.length, prefix.length + SEQ_DIGITS), 16) + 1
        }
        const c = { seq }
        this.counters.set(room, c)
        return c
      })()
      this.next.set(room, counter)
    }
    return counter
  }

  /** The room's next sequence number; only once `counter(room)` resolved. */
  private takeSeq(room: string): string {
    return seqKey(this.counters.get(room)!.seq++)
  }
}

/** The replaced keys as runs of consecutive sequence numbers, [first, last]. */
function runs(keys: readonly UpdateKey[]): [number, number][] {
  const seqs = [...new Set(keys.map((k) => Number.parseInt(k.slice(0, SEQ_DIGITS), 16)))].sort((a, b) => a - b)
  const out: [number, number][] = []
  for (const s of seqs) {
    const last = out[out.length - 1]
    if (last && last[1] === s - 1) last[1] = s
    else out.push([s, s])
  }
  return out
}
