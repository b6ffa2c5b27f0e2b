import type * as Y from 'yjs'

/**
 * A decoded update's structs by client, each list sorted by clock, so a
 * struct is found by its id in O(log n). Sorted here rather than trusted:
 * an update can be crafted with its structs out of order, and a lookup that
 * missed a struct would let it pass unjudged. Used by the replicas' checks
 * (authorship.ts) and the relay's (its UpdateView).
 */
export class StructIndex<S extends { id: Y.ID; length: number }> {
  readonly byClient = new Map<number, S[]>()

  constructor(structs: Iterable<S>) {
    for (const s of structs) {
      let list = this.byClient.get(s.id.client)
      if (!list) this.byClient.set(s.id.client, (list = []))
      list.push(s)
    }
    for (const list of this.byClient.values()) list.sort((a, b) => a.id.clock - b.id.clock)
  }

  /** The struct of the update that holds `id`, if any. */
  find(id: Y.ID): S | undefined {
    const list = this.byClient.get(id.client)
    if (!list) return undefined
    let lo = 0
    let hi = list.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const s = list[mid]!
      if (id.clock < s.id.clock) hi = mid - 1
      else if (id.clock >= s.id.clock + s.length) lo = mid + 1
      else return s
    }
    return undefined
  }
}
