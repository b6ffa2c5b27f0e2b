// Ids kept sorted by (timestamp, id), the order every view of history, audit
// and memory uses. Appends (the common case: a newer timestamp) cost a
// binary search and a push, so the cost per entry does not grow with the
// number of entries the way rescanning a long Y.Array does.

export class OrderedIndex {
  private readonly order: string[] = []
  private readonly timestamps = new Map<string, number>()

  get size(): number {
    return this.order.length
  }

  has(id: string): boolean {
    return this.timestamps.has(id)
  }

  /** Adds `id`, or moves it if its timestamp changed. */
  set(id: string, timestamp: number): void {
    const old = this.timestamps.get(id)
    if (old === timestamp) return
    if (old !== undefined) this.delete(id)
    this.timestamps.set(id, timestamp)
    const at = this.position(id, timestamp)
    if (at === this.order.length) this.order.push(id)
    else this.order.splice(at, 0, id)
  }

  delete(id: string): void {
    const timestamp = this.timestamps.get(id)
    if (timestamp === undefined) return
    const at = this.position(id, timestamp)
    if (this.order[at] === id) this.order.splice(at, 1)
    this.timestamps.delete(id)
  }

  ids(): readonly string[] {
    return this.order
  }

  at(index: number): string | undefined {
    return this.order[index]
  }

  /** First index whose entry is not less than (timestamp, id). */
  private position(id: string, timestamp: number): number {
    let lo = 0
    let hi = this.order.length
    // Fast path: most entries arrive newest-last.
    const last = this.order[hi - 1]
    if (last === undefined || this.less(last, id, timestamp)) return hi
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.less(this.order[mid]!, id, timestamp)) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  private less(entry: string, id: string, timestamp: number): boolean {
    const t = this.timestamps.get(entry)!
    return t < timestamp || (t === timestamp && entry < id)
  }
}
