/**
 * How far into its Yjs client each stream position reaches, as far as this
 * replica saw it in envelopes: the clock its own seals ended at, the clock
 * the structs of an applied update of the stream end at (an update writes
 * only as its stream's client). A snapshot whose cover claims a position
 * and whose state stops short of the clock known there claims content it
 * does not hold (an over-claim, see Intake). Only what the stream's own
 * signed envelopes carried is recorded, so an honest snapshot is never
 * judged short: it was sealed from a state that held at least what its
 * covers name (unless its signer took a cheat's covers in first).
 */
export class StreamClocks {
  /** Per stream key: (seq, clock) marks sorted by seq, clocks never decreasing. */
  private readonly marks = new Map<string, Array<{ seq: number; clock: number }>>()

  /** Positions up to `seq` of the stream reach at least `clock`. */
  mark(stream: string, seq: number, clock: number): void {
    if (clock <= 0) return
    let list = this.marks.get(stream)
    if (!list) this.marks.set(stream, (list = []))
    let i = list.length
    while (i > 0 && list[i - 1]!.seq > seq) i--
    const before = list[i - 1]
    if (before && before.clock >= clock) return
    if (before && before.seq === seq) before.clock = clock
    else list.splice(i++, 0, { seq, clock })
    // The marks after it reach at least as far.
    for (let j = i; j < list.length && list[j]!.clock < clock; j++) list[j]!.clock = clock
  }

  /** The clock the positions up to `seq` of the stream are known to reach (0 if none). */
  reachedAt(stream: string, seq: number): number {
    const list = this.marks.get(stream)
    if (!list) return 0
    let lo = 0
    let hi = list.length - 1
    let found = 0
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (list[mid]!.seq <= seq) {
        found = list[mid]!.clock
        lo = mid + 1
      } else hi = mid - 1
    }
    return found
  }
}
