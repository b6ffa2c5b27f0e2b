import * as Y from 'yjs'
import type { WireDoc } from '@kai-sync/engine'
import type { LogCopies } from './log-copies'
import type { Metrics } from './metrics'
import type { Logger } from './log'

/**
 * Merges into a room's doc, and tells what each merge added: the delta Yjs
 * encodes for its 'update' listener, or the update itself when it is known
 * to add exactly that (see Verdict's 'verbatim').
 */
export class RoomMerge {
  private delta: Uint8Array | null = null
  private readonly onUpdate = (update: Uint8Array): void => {
    this.delta = update
  }

  constructor(
    private readonly room: string,
    private readonly wire: WireDoc,
    private readonly copies: LogCopies,
    private readonly host: { metrics: Metrics; log: Logger },
  ) {
    wire.doc.on('update', this.onUpdate)
  }

  /** Runs `apply` (trusted updates: stored, or from another relay); returns what it added (null if nothing). */
  capture(apply: () => void): Uint8Array | null {
    this.delta = null
    try {
      apply()
      return this.delta
    } finally {
      this.delta = null
    }
  }

  /**
   * Applies a checked update; returns what it added (null if nothing).
   * `verbatim` (see Verdict): the update is what it adds, so Yjs is not
   * asked to encode it again; it encodes a delta only while a doc has an
   * 'update' listener, hence the listener is off for that merge.
   * `dropCopies`: copies of envelopes already in the log are deleted in
   * the same transaction (see LogCopies), so the delta holds tombstones.
   * `stale`: log items the guard found stale (see StaleDrop), deleted the
   * same way.
   */
  checked(update: Uint8Array, origin: unknown, verbatim = false, dropCopies = false, stale: Y.ID[] = []): Uint8Array | null {
    this.delta = null
    const doc = this.wire.doc
    if (verbatim) doc.off('update', this.onUpdate)
    try {
      if (!dropCopies && stale.length === 0) Y.applyUpdate(doc, update, origin)
      else {
        Y.transact(doc, (tr) => {
          Y.applyUpdate(doc, update, origin)
          if (stale.length > 0) this.host.metrics.inc('kai_relay_stale_dropped_total', undefined, this.dropStale(tr, stale))
          if (!dropCopies) return
          const dropped = this.copies.drop(tr)
          if (dropped > 0) this.host.metrics.inc('kai_relay_copies_dropped_total', undefined, dropped)
        }, origin)
      }
    } finally {
      if (verbatim) doc.on('update', this.onUpdate)
    }
    const store = doc.store
    if (store.pendingStructs !== null || store.pendingDs !== null) {
      // The guard integrates nothing it has not checked; anything Yjs would
      // integrate later without asking is dropped here.
      this.host.log.warn('dropped unresolved structs', { room: this.room })
      store.pendingStructs = null
      store.pendingDs = null
      // The guard rules this out for a verbatim update; should it happen,
      // only what was integrated (since the clocks it started at) is kept.
      if (verbatim) return Y.encodeStateAsUpdate(doc, Y.encodeStateVector(Y.parseUpdateMeta(update).from))
    }
    return verbatim ? update : this.delta
  }

  /** Inside the merge's transaction: deletes the stale log items it just integrated; returns how many. */
  private dropStale(tr: Y.Transaction, stale: Y.ID[]): number {
    let dropped = 0
    for (const id of stale) {
      if (id.clock < (tr.beforeState.get(id.client) ?? 0) || id.clock >= Y.getState(tr.doc.store, id.client)) continue
      const item = Y.getItem(tr.doc.store, id)
      if (item instanceof Y.Item && item.parent === this.wire.log && !item.deleted) {
        item.delete(tr)
        dropped++
      }
    }
    return dropped
  }
}
