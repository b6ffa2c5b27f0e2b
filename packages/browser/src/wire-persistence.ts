import * as Y from 'yjs'
import { IndexeddbPersistence } from 'y-indexeddb'
import { KaiError } from '@kai-sync/model'
import type { WireDoc } from '@kai-sync/engine'

/** The y-indexeddb database holding one session's wire doc. */
export function wireDbName(sessionId: string): string {
  return `kai-sync/wire/${sessionId}`
}

/** Where a store reports what it holds: `SyncEngine.registerStore('local', …)`'s handle. */
export interface StoreAcknowledger {
  acknowledge(stateVector: Map<number, number>): void
  remove(): void
}

/**
 * The wire doc kept in IndexedDB by y-indexeddb: only ciphertext envelopes
 * and signed roster entries ever reach the disk. It also tells the engine
 * what is stored, so the status can say "saved on this device".
 */
export class WirePersistence {
  readonly persistence: IndexeddbPersistence
  private ack: StoreAcknowledger | null = null
  private ackPending = false
  private ackAgain = false
  private destroyed = false
  private ackTimer: ReturnType<typeof setTimeout> | undefined
  private writeScheduled = false
  /** Updates not yet handed to y-indexeddb, with their origins. */
  private unwritten: Array<[Uint8Array, unknown]> = []

  private constructor(readonly wire: WireDoc, readonly sessionId: string) {
    this.persistence = new IndexeddbPersistence(wireDbName(sessionId), wire.doc)
    // y-indexeddb writes each update inside the update event, ahead of the
    // listeners registered after it: the BroadcastChannel post to the other
    // tabs, the relay's send, and on a receiving tab the engine's intake.
    // Its write runs one task later instead, then the acknowledgement, in
    // that order (see scheduleAck).
    wire.doc.off('update', this.persistence._storeUpdate)
    wire.doc.on('update', this.onUpdate)
  }

  /** Loads the stored wire doc into `wire`, then keeps storing every update. */
  static async open(wire: WireDoc, sessionId: string): Promise<WirePersistence> {
    const p = new WirePersistence(wire, sessionId)
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      await Promise.race([
        p.persistence.whenSynced,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new KaiError('unavailable', 'IndexedDB did not answer within 10 s; close other kai-sync windows and retry')), 10_000)
        }),
      ])
    } catch (e) {
      await p.destroy()
      throw e
    } finally {
      clearTimeout(timer)
    }
    return p
  }

  /** From now on, tells `store` what IndexedDB holds after each write commits. */
  acknowledgeTo(store: StoreAcknowledger): void {
    this.ack = store
    this.scheduleAck()
  }

  async destroy(): Promise<void> {
    this.writeNow()
    this.destroyed = true
    clearTimeout(this.ackTimer)
    this.wire.doc.off('update', this.onUpdate)
    this.ack?.remove()
    await this.persistence.destroy()
  }

  // After the current task: the write and its acknowledgement are not
  // urgent, the update's way to the other contexts is. Even setting the
  // timer waits for the end of the update event: scheduling a task costs
  // Chromium 50-75 µs after an idle moment, and this listener runs ahead
  // of the BroadcastChannel post.
  private readonly onUpdate = (update: Uint8Array, origin: unknown): void => {
    this.unwritten.push([update, origin])
    if (this.writeScheduled) return
    this.writeScheduled = true
    queueMicrotask(() => {
      if (this.destroyed) return
      this.ackTimer = setTimeout(() => {
        this.ackTimer = undefined
        this.writeScheduled = false
        this.writeNow()
        this.scheduleAck()
      }, 0)
    })
  }

  private writeNow(): void {
    const updates = this.unwritten
    this.unwritten = []
    if (this.destroyed) return
    for (const [update, origin] of updates) this.persistence._storeUpdate(update, origin)
  }

  /**
   * y-indexeddb writes without telling when the write commits. A read-only
   * transaction over the same store, created after that write, starts only
   * once the write has committed (IndexedDB orders overlapping transactions
   * by creation), so its completion is the acknowledgement.
   */
  private scheduleAck(): void {
    const db = this.persistence.db
    if (!this.ack || !db || this.destroyed) return
    if (this.ackPending) {
      this.ackAgain = true
      return
    }
    this.ackPending = true
    const stateVector = Y.decodeStateVector(Y.encodeStateVector(this.wire.doc))
    const tx = db.transaction('updates', 'readonly')
    tx.objectStore('updates').count()
    const done = (ok: boolean) => {
      this.ackPending = false
      if (ok && !this.destroyed) this.ack?.acknowledge(stateVector)
      if (this.ackAgain) {
        this.ackAgain = false
        this.scheduleAck()
      }
    }
    tx.oncomplete = () => done(true)
    tx.onabort = tx.onerror = () => done(false)
  }
}
