import * as Y from 'yjs'
import { sha256 } from '@noble/hashes/sha2.js'
import { toBase64Url } from '@kai-sync/crypto'

/** What one wire-doc transaction added. */
export interface WireInsertions {
  envelopes: Uint8Array[]
  rosterEntries: Uint8Array[]
  keyGrants: Uint8Array[]
}

/**
 * The document every transport replicates: ciphertext only. `log` holds
 * sealed envelopes; `roster` signed roster entries and `keys` signed key
 * grants (each session key wrapped for one device), both keyed by their
 * hash so entries never overwrite each other, and never compacted. Any
 * y-websocket relay can merge and serve it without a key.
 */
export class WireDoc {
  readonly doc: Y.Doc
  readonly log: Y.Array<Uint8Array>
  readonly roster: Y.Map<Uint8Array>
  readonly keys: Y.Map<Uint8Array>

  constructor(doc: Y.Doc = new Y.Doc()) {
    this.doc = doc
    this.log = doc.getArray('log')
    this.roster = doc.getMap('roster')
    this.keys = doc.getMap('keys')
  }

  /** The key an entry of `roster` or `keys` is stored under: its hash. */
  static entryKey(entry: Uint8Array): string {
    return toBase64Url(sha256(entry).subarray(0, 18))
  }

  /** Appends envelopes at the end of the log, in one transaction. */
  append(envelopes: Uint8Array[], origin: unknown): void {
    // insert(length) rather than push: push rescans the array.
    this.doc.transact(() => this.log.insert(this.log.length, envelopes), origin)
  }

  addRosterEntries(entries: Uint8Array[], origin: unknown): void {
    this.addTo(this.roster, entries, origin)
  }

  addKeyGrants(grants: Uint8Array[], origin: unknown): void {
    this.addTo(this.keys, grants, origin)
  }

  private addTo(map: Y.Map<Uint8Array>, entries: Uint8Array[], origin: unknown): void {
    this.doc.transact(() => {
      for (const e of entries) {
        const key = WireDoc.entryKey(e)
        if (!map.has(key)) map.set(key, e)
      }
    }, origin)
  }

  envelopes(): Uint8Array[] {
    return this.log.toArray()
  }

  rosterEntries(): Uint8Array[] {
    return [...this.roster.values()]
  }

  keyGrants(): Uint8Array[] {
    return [...this.keys.values()]
  }

  /**
   * Inserts `snapshot` and deletes every envelope `covered` says it holds,
   * in one transaction, so no replica ever sees the deletions without the
   * snapshot that replaces them.
   */
  replaceCovered(snapshot: Uint8Array, covered: (envelope: Uint8Array) => boolean, origin: unknown): number {
    let deleted = 0
    this.doc.transact(() => {
      const all = this.log.toArray()
      // Delete runs from the end so earlier indexes stay valid.
      let end = all.length
      for (let i = all.length - 1; i >= -1; i--) {
        const drop = i >= 0 && covered(all[i]!)
        if (drop) continue
        const start = i + 1
        if (end > start) {
          this.log.delete(start, end - start)
          deleted += end - start
        }
        end = i
      }
      this.log.insert(this.log.length, [snapshot])
    }, origin)
    return deleted
  }

  /**
   * The envelopes and roster entries a transaction inserted, read from the
   * struct store between its before and after state: O(inserted items),
   * unlike `event.changes`, which walks the whole array.
   */
  insertedIn(tr: Y.Transaction): WireInsertions {
    const out: WireInsertions = { envelopes: [], rosterEntries: [], keyGrants: [] }
    tr.afterState.forEach((after, client) => {
      const before = tr.beforeState.get(client) ?? 0
      if (after <= before) return
      const structs = this.doc.store.clients.get(client)
      if (!structs) return
      for (let i = Y.findIndexSS(structs, before); i < structs.length; i++) {
        const s = structs[i]!
        if (s.id.clock >= after) break
        if (!(s instanceof Y.Item) || s.deleted || !(s.content instanceof Y.ContentBinary)) continue
        if (s.parent === this.log) out.envelopes.push(s.content.content)
        else if (s.parent === this.roster) out.rosterEntries.push(s.content.content)
        else if (s.parent === this.keys) out.keyGrants.push(s.content.content)
      }
    })
    return out
  }

  encodedSize(): number {
    return Y.encodeStateAsUpdate(this.doc).length
  }
}
