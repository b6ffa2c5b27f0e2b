import * as Y from 'yjs'
import { KaiError } from '@kai-sync/model'
import { transportOrigin, type SyncEngine, type WireDoc } from '@kai-sync/engine'
import type { UpdateKey, UpdateStore } from '@kai-sync/storage'

/** Merge the stored updates of a room into one after this many appends. */
const COMPACT_AFTER = 200
const STORE_ORIGIN = transportOrigin('store')

/**
 * Where a store compaction is: `written` once the merged update is stored
 * and the updates it replaces are not yet removed; `replaced` once they are,
 * before this process notes it.
 */
export type StoreCompactionStep = 'written' | 'replaced'

export interface WirePersistenceOptions {
  /** Compact after this many appends (200 unless given). */
  compactAfter?: number
  /** Called at each step of a store compaction (the kill test stops the process there). */
  onCompactionStep?: (step: StoreCompactionStep) => void
}

/**
 * Keeps a wire doc (ciphertext only) in the embedded store: every update is
 * appended as it happens, whatever its origin, and the room's updates are
 * now and then replaced by one merged update. `whenStored` resolves once
 * everything so far is on disk, which is when the API answers a write.
 */
export class WirePersistence {
  private keys: UpdateKey[] = []
  private chain: Promise<void> = Promise.resolve()
  private queued = 0
  private failure: KaiError | null = null
  private statusStore: ReturnType<SyncEngine['registerStore']> | undefined
  private destroyed = false

  private constructor(
    private readonly store: UpdateStore,
    readonly room: string,
    readonly wire: WireDoc,
    private readonly options: WirePersistenceOptions,
  ) {}

  /** Loads what the store holds for `room` into `wire`, then follows `wire`. */
  static async open(store: UpdateStore, room: string, wire: WireDoc, options: WirePersistenceOptions = {}): Promise<WirePersistence> {
    const persistence = new WirePersistence(store, room, wire, options)
    const stored = await store.load(room)
    if (stored.length > 0) {
      Y.applyUpdate(wire.doc, Y.mergeUpdates(stored.map((s) => s.update)), STORE_ORIGIN)
      persistence.keys = stored.map((s) => s.key)
    } else if (wire.doc.store.clients.size > 0) {
      // A doc filled before it was stored (a resumed handoff): store it whole.
      persistence.enqueue(Y.encodeStateAsUpdate(wire.doc))
    }
    wire.doc.on('update', persistence.onUpdate)
    return persistence
  }

  /** Reports to the engine's sync status what the store holds ("saved"). */
  reportTo(engine: SyncEngine): void {
    this.statusStore = engine.registerStore('local', 'leveldb')
    this.statusStore.acknowledge(stateVector(this.wire.doc))
  }

  get hasData(): boolean {
    return this.keys.length > 0 || this.queued > 0
  }

  /** Resolves once every update so far is stored; rejects with `unavailable` if one could not be. */
  async whenStored(): Promise<void> {
    await this.chain
    if (this.failure) throw this.failure
  }

  destroy(): Promise<void> {
    this.destroyed = true
    this.wire.doc.off('update', this.onUpdate)
    this.statusStore?.remove()
    return this.chain
  }

  private readonly onUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === STORE_ORIGIN) return
    this.enqueue(update)
  }

  private enqueue(update: Uint8Array): void {
    this.queued++
    this.chain = this.chain.then(async () => {
      try {
        this.keys.push(await this.store.append(this.room, update))
        if (this.keys.length >= (this.options.compactAfter ?? COMPACT_AFTER)) await this.compact()
        this.failure = null
      } catch (cause) {
        this.failure = new KaiError('unavailable', `the local store could not save session ${this.room}`, { cause })
      } finally {
        this.queued--
        if (this.queued === 0 && !this.destroyed) this.statusStore?.acknowledge(stateVector(this.wire.doc))
      }
    })
  }

  /** One merged update replaces those stored (an update appended meanwhile is kept). */
  private async compact(): Promise<void> {
    const merged = Y.encodeStateAsUpdate(this.wire.doc)
    const step = this.options.onCompactionStep
    const key = await this.store.replace(this.room, this.keys, merged, step ? { onStored: () => step('written') } : {})
    step?.('replaced')
    this.keys = [key]
  }
}

function stateVector(doc: Y.Doc): Map<number, number> {
  return Y.decodeStateVector(Y.encodeStateVector(doc))
}
