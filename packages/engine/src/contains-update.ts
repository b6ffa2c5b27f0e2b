import * as Y from 'yjs'

/**
 * True if `doc` already has every struct and every deletion of `update`
 * (Yjs v1): applying it would change nothing. What `Y.snapshotContainsUpdate`
 * answers, without building the doc's whole delete set: O(update), not
 * O(doc). False for bytes that do not decode (applying them says why).
 */
export function docContainsUpdate(doc: Y.Doc, update: Uint8Array): boolean {
  let decoded: { structs: Array<Y.Item | Y.GC | Y.Skip>; ds: { clients: Map<number, Array<{ clock: number; len: number }>> } }
  try {
    decoded = Y.decodeUpdate(update) as typeof decoded
  } catch {
    return false
  }
  const store = doc.store
  for (const s of decoded.structs) {
    if (!(s instanceof Y.Skip) && Y.getState(store, s.id.client) < s.id.clock + s.length) return false
  }
  for (const [client, ranges] of decoded.ds.clients) {
    const structs = store.clients.get(client)
    for (const { clock, len } of ranges) {
      if (!structs || Y.getState(store, client) < clock + len) return false
      for (let i = Y.findIndexSS(structs, clock); i < structs.length && structs[i]!.id.clock < clock + len; i++) {
        if (!structs[i]!.deleted) return false
      }
    }
  }
  return true
}
