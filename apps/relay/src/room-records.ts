import type { UpdateKey, UpdateStore } from '@kai-sync/storage'
import type { Metrics } from './metrics'
import type { Logger } from './log'

/**
 * The stored records one room's state is made of (updates stored together
 * share one), and their merging into one record. Merging costs the size of
 * the whole state, so it waits until as many bytes were appended since
 * the last merge: amortized, each stored byte is merged a bounded number of
 * times, however large the room grows.
 */
export class RoomRecords {
  private keys = new Set<UpdateKey>()
  /** Bytes stored since the last merge, and the size of that merged state. */
  private appendedBytes = 0
  private mergedBytes = 0
  /** Stored records that do not decode: skipped, and never replaced by a merge (see RoomUpdates.applyStored). */
  private readonly quarantined = new Set<UpdateKey>()

  constructor(
    private readonly room: string,
    private readonly host: { store: UpdateStore; metrics: Metrics; log: Logger; mergeAfter: number },
  ) {}

  /** Records the doc now holds all of (loaded, or merged in again): a merge may replace them. */
  hold(keys: Iterable<UpdateKey>): void {
    for (const key of keys) this.keys.add(key)
  }

  /** The size of what the room loaded, the base a merge is weighed against. */
  loadedBytes(bytes: number): void {
    this.mergedBytes += bytes
  }

  /** An update this room stored. */
  appended(key: UpdateKey, bytes: number): void {
    this.keys.add(key)
    this.appendedBytes += bytes
  }

  /** A stored record that does not decode; true the first time it is seen (logged and counted then). */
  quarantine(key: UpdateKey, bytes: number, error: Error): boolean {
    if (this.quarantined.has(key)) return false
    this.quarantined.add(key)
    this.host.metrics.inc('kai_relay_stored_updates_quarantined_total')
    this.host.log.error('stored update quarantined', { room: this.room, key, bytes, error: error.message })
    return true
  }

  get mergeDue(): boolean {
    return this.keys.size > this.host.mergeAfter && this.appendedBytes > this.mergedBytes
  }

  /** Replaces every record held with one holding `state` (taken together with the keys it replaces). */
  async merge(state: () => Uint8Array): Promise<void> {
    if (this.keys.size <= 1) return
    const keys = [...this.keys]
    const merged = state()
    this.keys = new Set()
    try {
      this.host.log.debug('compacting stored state', { room: this.room, records: keys.length, bytes: merged.length })
      this.keys.add(await this.host.metrics.timed('replace', () => this.host.store.replace(this.room, keys, merged)))
      this.host.log.debug('compacted stored state', { room: this.room })
      this.mergedBytes = merged.length
      this.appendedBytes = 0
    } catch (e) {
      this.keys = new Set([...keys, ...this.keys])
      this.host.metrics.inc('kai_relay_storage_errors_total')
      this.host.log.error('storage compaction failed', { room: this.room, error: (e as Error).message })
    }
  }
}
