import { ClassicLevel } from 'classic-level'
import { KaiError } from '@kai-sync/model'
import type { StoredUpdate, UpdateKey, UpdateStore } from './update-store'

// Layout: `u:<room>:<seq as 16 hex digits>` -> update, and `r:<room>` -> ''
// so rooms() need not scan updates. Rooms are URI-encoded, so ':' never
// appears inside one and one room's range never holds another's keys.

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
    await this.db.batch(
      [
        { type: 'put', key: updatePrefix(room) + key, value: update },
        { type: 'put', key: `r:${roomPart(room)}`, value: new Uint8Array(0) },
      ],
      { sync: this.sync },
    )
    return key
  }

  async replace(room: string, keys: readonly UpdateKey[], merged: Uint8Array): Promise<UpdateKey> {
    const key = await this.nextKey(room)
    const prefix = updatePrefix(room)
    await this.db.batch(
      [
        ...keys.map((k) => ({ type: 'del' as const, key: prefix + k })),
        { type: 'put' as const, key: prefix + key, value: merged },
        { type: 'put' as const, key: `r:${roomPart(room)}`, value: new Uint8Array(0) },
      ],
      { sync: this.sync },
    )
    return key
  }

  async rooms(): Promise<string[]> {
    const out: string[] = []
    for await (const key of this.db.keys({ gte: 'r:', lt: 'r;' })) out.push(decodeURIComponent(key.slice(2)))
    return out
  }

  async close(): Promise<void> {
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
