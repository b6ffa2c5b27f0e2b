import * as Y from 'yjs'
import { StructIndex } from './struct-index'
import { deleteRanges, type IdRange } from './stream-deletions'
import { KaiError, decodeHlc } from '@kai-sync/model'

// "Authorship is the signer's" (DESIGN.md, against a member who cheats).
// The session doc records who did what in plain values: a message's
// `info.author`, an audit entry's `actor`, a memory snapshot's `author`, a
// config, policy or edit write's `device` and the device in its clock. A
// writer signs whatever bytes it likes, so before an update is applied
// (Yjs cannot un-apply) its items are read, each placed where it would
// land, and the update is refused if one of them names another device than
// its signer, or changes or deletes a value that is written once: an audit
// entry, a message's info, a message itself.
//
// Where an item lands is not always in its own bytes: an item with a left
// or right neighbour names no parent and inherits its neighbour's, and a
// deletion names only item ids. Those are looked up in the same update,
// then in the session doc. One that is in neither has not arrived here yet:
// the verdict then waits for it (`wait`), since deciding without it would
// let replicas that saw it and replicas that did not disagree. Once it is
// here, where an item sits never changes, so every replica reaches the same
// verdict from the same bytes.

/** The roots whose values name a device, and the one whose children are messages. */
const REGISTERS = new Set(['config', 'policies', 'edits'])
const ROOTS = ['audit', 'memory', 'history', 'controls', ...REGISTERS] as const

type Container = { root: string } | 'message' | 'other'
type Place = { container: Container; key: string | null }
type Found = Place | 'gone' | 'unknown'
type Struct = Y.Item | Y.GC | Y.Skip
// Yjs types are parameterized by their event type; any of them will do here.
type AnyType = Y.AbstractType<any>

/**
 * Checks one decrypted update against the session doc it is about to be
 * applied to. Throws `forged_author`, `audit_rewrite` or `malformed`;
 * returns `wait` when it refers to items not here yet, else the clock its
 * structs reach (the end of the last one; 0 if it has none) and what it
 * deletes, which Intake records for its stream's position (StreamClocks,
 * StreamDeletions), read here because the update is decoded here anyway.
 * O(structs and deleted ranges in the update), times a binary search in
 * the doc for each reference outside it.
 */
export function checkAuthorship(doc: Y.Doc, signer: string, update: Uint8Array): { reach: number; deletes: IdRange[] } | 'wait' {
  let decoded: { structs: Struct[]; ds: { clients: Map<number, Array<{ clock: number; len: number }>> } }
  try {
    decoded = Y.decodeUpdate(update) as unknown as typeof decoded
  } catch (cause) {
    throw new KaiError('malformed', 'the decrypted update is not a Yjs update', { cause })
  }
  const places = new Places(doc, decoded.structs)
  let reach = 0
  for (const s of decoded.structs) {
    if (!(s instanceof Y.Skip)) reach = Math.max(reach, s.id.clock + s.length)
    if (!(s instanceof Y.Item)) continue
    const place = places.ofUpdateItem(s)
    if (place === 'unknown') return 'wait'
    if (place === 'gone') continue
    checkItem(s, place, signer, places)
  }
  for (const [client, ranges] of decoded.ds.clients) {
    for (const { clock, len } of ranges) {
      if (places.deleted(client, clock, clock + len) === 'unknown') return 'wait'
    }
  }
  return { reach, deletes: deleteRanges(decoded.ds) }
}

function checkItem(item: Y.Item, place: Place, signer: string, places: Places): void {
  const kind = kindOf(place)
  if (kind === null) return
  // A map item with a neighbour replaces the value it was written after.
  const replaces = item.origin !== null || item.rightOrigin !== null
  const key = String(place.key).slice(0, 60)
  if (kind === 'audit' && replaces) throw new KaiError('audit_rewrite', `the update replaces audit entry ${key}`)
  if (kind === 'controls' && replaces) throw new KaiError('forged_author', `the update replaces control request ${key}, taking over its authorship`)
  if (kind === 'history' && replaces) throw new KaiError('forged_author', `the update replaces message ${key}, taking over its authorship`)
  // Written once, with its message: never replaced (a replacement names a
  // neighbour, not its message) nor added later beside the author's own.
  if (kind === 'info' && !places.bornHere(item.parent)) throw new KaiError('forged_author', 'the update rewrites the info (author) of an existing message')
  for (const value of valuesOf(item)) {
    const named = namedDevices(kind, value)
    const other = named.find((d) => d !== signer)
    if (other !== undefined) {
      throw new KaiError('forged_author', `the update's ${kind} ${key} names ${String(other).slice(0, 60)}, not its signer`)
    }
  }
}

type Kind = 'audit' | 'memory' | 'history' | 'info' | 'register' | 'controls'

function kindOf(place: Place): Kind | null {
  const c = place.container
  if (c === 'message') return place.key === 'info' ? 'info' : null
  if (c === 'other') return null
  if (REGISTERS.has(c.root)) return 'register'
  return c.root === 'audit' || c.root === 'memory' || c.root === 'history' || c.root === 'controls' ? c.root : null
}

/**
 * The device ids a value puts in an author position (a value that is not
 * what honest code writes there counts as naming nobody, which for audit
 * entries and register writes, whose actor or device is required, is
 * refused as not naming the signer).
 */
function namedDevices(kind: Kind, value: unknown): unknown[] {
  const v = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null
  switch (kind) {
    case 'audit':
      return [v?.actor]
    case 'controls':
      return [v?.device]
    case 'register':
      return [v?.device, hlcDevice(v?.hlc)]
    case 'memory':
    case 'info':
      return v && v.author !== undefined ? [v.author] : []
    case 'history':
      return []
  }
}

function hlcDevice(hlc: unknown): unknown {
  try {
    return typeof hlc === 'string' ? decodeHlc(hlc).device : hlc
  } catch {
    return hlc
  }
}

function valuesOf(item: Y.Item): unknown[] {
  const c = item.content
  if (c instanceof Y.ContentAny || c instanceof Y.ContentJSON) return c.getContent()
  if (c instanceof Y.ContentDeleted) return []
  if (c instanceof Y.ContentString) return [c.str]
  // A type, binary, embed, format or subdocument: a value with no fields.
  return [undefined]
}

/** Where items land: those of the update (memoized) and those already in the doc. */
class Places {
  private readonly structs: StructIndex<Struct>
  private readonly memo = new Map<Y.Item, Found>()
  private readonly roots = new Map<AnyType, string>()
  private readonly history: AnyType | undefined

  constructor(
    private readonly doc: Y.Doc,
    structs: Struct[],
  ) {
    this.structs = new StructIndex(structs)
    for (const name of ROOTS) {
      const type = doc.share.get(name)
      if (type) this.roots.set(type, name)
    }
    this.history = doc.share.get('history')
  }

  /**
   * Where an item of the update lands. An item with a neighbour lands where
   * the neighbour is; the chain of neighbours is followed without recursion
   * (an update can hold a long one) and every link is remembered.
   */
  ofUpdateItem(start: Y.Item): Found {
    const chain: Y.Item[] = []
    let item: Y.Item = start
    let found: Found | undefined
    for (;;) {
      const known = this.memo.get(item)
      if (known !== undefined) {
        found = known
        break
      }
      chain.push(item)
      if (item.parent !== null) {
        const container = typeof item.parent === 'string' ? { root: item.parent } : this.containerOf(item.parent as Y.ID)
        found = container === 'gone' || container === 'unknown' ? container : { container, key: item.parentSub }
        break
      }
      const ref = item.origin ?? item.rightOrigin
      if (ref === null) {
        found = { container: 'other', key: null }
        break
      }
      const next = this.inUpdate(ref)
      if (next instanceof Y.Item) {
        item = next
        continue
      }
      found = next === undefined ? this.ofDocItem(ref) : next instanceof Y.GC ? 'gone' : 'unknown'
      break
    }
    for (const link of chain) this.memo.set(link, found)
    return found
  }

  /**
   * Checks a deleted range: a deletion may not remove an audit entry or a
   * message's info. Ids past what the doc holds must be the update's own.
   */
  deleted(client: number, from: number, to: number): 'ok' | 'unknown' {
    const held = Y.getState(this.doc.store, client)
    if (from < held) {
      const structs = this.doc.store.clients.get(client)!
      for (let i = Y.findIndexSS(structs, from); i < structs.length && structs[i]!.id.clock < Math.min(to, held); i++) {
        const s = structs[i]!
        if (!(s instanceof Y.Item)) continue
        const kind = kindOf({ container: this.containerOfType(s.parent as AnyType), key: s.parentSub })
        if (kind === 'audit') throw new KaiError('audit_rewrite', `the update deletes audit entry ${String(s.parentSub).slice(0, 60)}`)
        if (kind === 'info') throw new KaiError('forged_author', 'the update deletes the info (author) of a message')
        if (kind === 'controls') throw new KaiError('forged_author', `the update deletes control request ${String(s.parentSub).slice(0, 60)}`)
        if (kind === 'history') throw new KaiError('forged_author', `the update deletes message ${String(s.parentSub).slice(0, 60)} and its authorship`)
      }
    }
    // Items of this update deleted in it were checked as items; anything
    // else past the doc's state has not arrived here yet.
    for (let clock = Math.max(from, held); clock < to; ) {
      const s = this.inUpdate(Y.createID(client, clock))
      if (s === undefined || s instanceof Y.Skip) return 'unknown'
      clock = s.id.clock + s.length
    }
    return 'ok'
  }

  /** Whether `parent` is an item of this update (a type created with its children). */
  bornHere(parent: Y.Item['parent']): boolean {
    return parent instanceof Y.ID && this.inUpdate(parent) instanceof Y.Item
  }

  private ofDocItem(id: Y.ID): Found {
    const s = this.inDoc(id)
    if (s === undefined) return 'unknown'
    if (!(s instanceof Y.Item)) return 'gone'
    return { container: this.containerOfType(s.parent as AnyType), key: s.parentSub }
  }

  /** What the type whose item is `id` is, from the update or the doc. */
  private containerOf(id: Y.ID): Container | 'gone' | 'unknown' {
    const s = this.inUpdate(id)
    if (s instanceof Y.Item) {
      if (!(s.content instanceof Y.ContentType)) return 'other'
      const place = this.ofUpdateItem(s)
      if (place === 'gone' || place === 'unknown') return place
      return typeof place.container === 'object' && place.container.root === 'history' ? 'message' : 'other'
    }
    if (s !== undefined) return s instanceof Y.GC ? 'gone' : 'unknown'
    const d = this.inDoc(id)
    if (d === undefined) return 'unknown'
    if (!(d instanceof Y.Item)) return 'gone'
    return d.content instanceof Y.ContentType ? this.containerOfType(d.content.type) : 'other'
  }

  private containerOfType(type: AnyType): Container {
    const item = type._item
    if (item === null) {
      const root = this.roots.get(type)
      return root === undefined ? 'other' : { root }
    }
    return item.parent === this.history ? 'message' : 'other'
  }

  private inUpdate(id: Y.ID): Struct | undefined {
    return this.structs.find(id)
  }

  private inDoc(id: Y.ID): Y.Item | Y.GC | undefined {
    if (id.clock >= Y.getState(this.doc.store, id.client)) return undefined
    const structs = this.doc.store.clients.get(id.client)!
    return structs[Y.findIndexSS(structs, id.clock)] as Y.Item | Y.GC
  }
}
