import { VolatileStateSchema, type Json, type Mode, type VolatileState } from '@kai-sync/model'
import { openPresence, sealPresence, type SyncEngine } from '@kai-sync/engine'
import { STORES, committed, request, type DeviceDb } from './device-db'

/**
 * A session's volatile state at rest on this device, so a reload or a
 * switch of mode (close the popup, open the side panel) loses nothing, a
 * half-written draft included. Each field is kept as its own sealed
 * presence state (sealPresence: signed, encrypted under the session key)
 * and the latest write of each field wins: the draft typed in the popup and
 * the scratchpad edited in the tab both survive, whichever closed last.
 */
type Field = 'active_tools' | 'streaming' | 'scratchpad' | `ui:${string}`

function fieldsOf(v: VolatileState): Map<Field, string> {
  const out = new Map<Field, string>([
    ['active_tools', JSON.stringify(v.active_tools)],
    ['streaming', JSON.stringify(v.streaming)],
    ['scratchpad', JSON.stringify(v.scratchpad)],
  ])
  for (const [k, value] of Object.entries(v.ui_state)) out.set(`ui:${k}`, JSON.stringify(value))
  return out
}

function only(field: Field, v: VolatileState): Partial<VolatileState> {
  if (field.startsWith('ui:')) {
    const key = field.slice(3)
    return { ui_state: { [key]: v.ui_state[key] as Json } }
  }
  return { [field]: v[field as keyof VolatileState] }
}

export class VolatileStore {
  /** The JSON of each field as last stored (or loaded), to store only what changed. */
  private stored = new Map<Field, string>()
  private next: VolatileState | null = null
  private writing: Promise<void> | null = null

  constructor(
    private readonly db: DeviceDb,
    private readonly engine: SyncEngine,
    private readonly mode: Mode,
  ) {}

  /** Everything stored for this session; fields that fail to open (tampered, foreign) are skipped. */
  async load(): Promise<VolatileState> {
    const tx = this.db.transaction(STORES.volatile, 'readonly')
    const store = tx.objectStore(STORES.volatile)
    const range = IDBKeyRange.bound([this.engine.sessionId, ''], [this.engine.sessionId, '\uffff'])
    const [keys, values] = await Promise.all([request(store.getAllKeys(range)), request(store.getAll(range))])
    const merged: VolatileState = VolatileStateSchema.parse({})
    await Promise.all(
      keys.map(async (key, i) => {
        const field = (key as [string, Field])[1]
        try {
          const { state } = await openPresence(this.engine, values[i] as Uint8Array)
          const part = only(field, state.volatile)
          if (part.ui_state) Object.assign(merged.ui_state, part.ui_state)
          else Object.assign(merged, part)
        } catch {
          // Sealed for a key or device this context does not accept: not restored.
        }
      }),
    )
    this.stored = fieldsOf(merged)
    return merged
  }

  /** Stores the fields of `state` that changed; rapid calls coalesce, the last wins. */
  save(state: VolatileState): Promise<void> {
    this.next = state
    this.writing ??= this.drain().finally(() => {
      this.writing = null
    })
    return this.writing
  }

  /** True while a save is still on its way to IndexedDB. */
  get saving(): boolean {
    return this.writing !== null
  }

  /** Resolves once every save so far is in IndexedDB. */
  async whenSaved(): Promise<void> {
    while (this.writing) await this.writing
  }

  private async drain(): Promise<void> {
    while (this.next) {
      const state = this.next
      this.next = null
      const current = fieldsOf(state)
      const changed = [...current].filter(([f, json]) => this.stored.get(f) !== json).map(([f]) => f)
      const removed = [...this.stored.keys()].filter((f) => !current.has(f))
      if (changed.length === 0 && removed.length === 0) continue
      const sealed = await Promise.all(
        changed.map(async (f) => {
          const volatile = VolatileStateSchema.parse(only(f, state))
          return [f, await sealPresence(this.engine, { mode: this.mode, label: this.mode, volatile, closing: false })] as const
        }),
      )
      const tx = this.db.transaction(STORES.volatile, 'readwrite')
      const store = tx.objectStore(STORES.volatile)
      for (const [f, bytes] of sealed) store.put(bytes, [this.engine.sessionId, f])
      for (const f of removed) store.delete([this.engine.sessionId, f])
      await committed(tx)
      this.stored = current
    }
  }
}
