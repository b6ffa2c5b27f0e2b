import * as Y from 'yjs'
import { StructIndex, type WireDoc } from '@kai-sync/engine'

// A decoded Yjs update read beside the room's wire doc: which structs are
// new, where each lands (log, roster, keys), what it deletes. The guards
// (update-guard.ts, reader-guard.ts) judge an update through this view.

export type Struct = Y.Item | Y.GC | Y.Skip
export interface DeleteSet {
  clients: Map<number, { clock: number; len: number }[]>
}
export type Place = 'log' | 'roster' | 'keys' | 'gc' | 'missing' | 'other'

export interface Decoded {
  structs: Struct[]
  ds: DeleteSet
}

/** The update's structs beside the room's doc: what is new, where it goes, what it deletes. */
export class UpdateView {
  private readonly structs: StructIndex<Struct>
  private readonly places = new Map<Struct, Place>()

  constructor(
    private readonly wire: WireDoc,
    structs: Struct[],
  ) {
    this.structs = new StructIndex(structs)
  }

  private docState(client: number): number {
    return Y.getState(this.wire.doc.store, client)
  }

  /** The doc's clock for a client: the next struct it can integrate. */
  stateOf(client: number): number {
    return this.docState(client)
  }

  isNew(s: Struct): boolean {
    return s.id.clock + s.length > this.docState(s.id.client)
  }

  /** True if some client's structs start beyond what the doc has: Yjs would hold them back. */
  hasGaps(): boolean {
    for (const [client, list] of this.structs.byClient) {
      let available = this.docState(client)
      for (const s of list) {
        if (s instanceof Y.Skip) continue
        if (s.id.clock > available) return true
        available = Math.max(available, s.id.clock + s.length)
      }
    }
    return false
  }

  private findInUpdate(id: Y.ID): Struct | undefined {
    const s = this.structs.find(id)
    return s instanceof Y.Skip ? undefined : s
  }

  private findInDoc(id: Y.ID): Y.Item | Y.GC | undefined {
    if (id.clock >= this.docState(id.client)) return undefined
    return Y.getItem(this.wire.doc.store, id) as Y.Item | Y.GC
  }

  placeOfExisting(item: Y.Item): Place {
    if (item.parent === this.wire.log) return 'log'
    if (item.parent === this.wire.roster) return 'roster'
    if (item.parent === this.wire.keys) return 'keys'
    return typeof item.parent === 'string' ? this.rootPlace(item.parent) : 'other'
  }

  private rootPlace(name: string): Place {
    return name === 'log' || name === 'roster' || name === 'keys' ? name : 'other'
  }

  private placeOfId(id: Y.ID): Place {
    const inDoc = this.findInDoc(id)
    if (inDoc) return inDoc instanceof Y.GC ? 'gc' : this.placeOfExisting(inDoc)
    const inUpdate = this.findInUpdate(id)
    if (!inUpdate) return 'missing'
    return inUpdate instanceof Y.Item ? this.placeOf(inUpdate) : 'gc'
  }

  /** Where an item of the update lands, following its neighbours as Yjs does. */
  placeOf(item: Y.Item): Place {
    const known = this.places.get(item)
    if (known) return known
    this.places.set(item, 'other') // a reference cycle lands nowhere valid
    let place: Place
    if (item.origin === null && item.rightOrigin === null) {
      place = typeof item.parent === 'string' ? this.rootPlace(item.parent) : 'other'
    } else {
      const left = item.origin ? this.placeOfId(item.origin) : null
      const right = item.rightOrigin ? this.placeOfId(item.rightOrigin) : null
      if (left === 'missing' || right === 'missing') place = 'missing'
      else if (left === 'other' || right === 'other') place = 'other'
      else if (left === 'gc' || right === 'gc') place = 'gc'
      else if (left && right && left !== right) place = 'other'
      else place = (left ?? right)!
    }
    this.places.set(item, place)
    return place
  }

  /** The map key of a roster item, following its left neighbour as Yjs does. */
  keyOf(item: Y.Item): string | null {
    // Integrated items know their key; a new one takes its left neighbour's.
    if (item.origin === null) return item.parentSub
    const left = this.findInDoc(item.origin) ?? this.findInUpdate(item.origin)
    if (!(left instanceof Y.Item)) return null
    if (left.parent !== null && typeof left.parent === 'object' && !(left.parent instanceof Y.ID)) return left.parentSub
    return this.keys.get(left) ?? this.memoKey(left)
  }

  private readonly keys = new Map<Y.Item, string | null>()

  private memoKey(item: Y.Item): string | null {
    this.keys.set(item, null) // a cycle has no key
    const key = this.keyOf(item)
    this.keys.set(item, key)
    return key
  }

  /**
   * The live binary items (in the doc or arriving in this update) that the
   * delete set removes, or 'missing' when it names clocks the relay lacks.
   */
  deletions(ds: DeleteSet): Y.Item[] | 'missing' {
    const out: Y.Item[] = []
    for (const [client, ranges] of ds.clients) {
      const docState = this.docState(client)
      const structs = this.wire.doc.store.clients.get(client)
      for (const { clock, len } of ranges) {
        const end = clock + len
        if (end > docState) {
          // The part beyond the doc must arrive in this very update.
          for (let c = Math.max(clock, docState); c < end; ) {
            const s = this.findInUpdate(Y.createID(client, c))
            if (!s) return 'missing'
            if (s instanceof Y.Item && s.content instanceof Y.ContentBinary) out.push(s)
            c = s.id.clock + s.length
          }
        }
        if (!structs || clock >= docState) continue
        for (let i = Y.findIndexSS(structs, clock); i < structs.length; i++) {
          const s = structs[i]!
          if (s.id.clock >= end) break
          if (s instanceof Y.Item && !s.deleted) out.push(s)
        }
      }
    }
    return out
  }
}
