import * as Y from 'yjs'

/** Yjs ids `clock` to `clock + len - 1` of `client`. */
export interface IdRange {
  client: number
  clock: number
  len: number
}

/**
 * What each stream position deleted, as far as this replica saw it in the
 * stream's own envelopes (the delete sets of the updates it applied). The
 * deletions counterpart of StreamClocks: a snapshot whose cover claims a
 * position must delete at least what the stream deleted up to there, or a
 * device that joins through a log the snapshot compacted sees the deleted
 * items again (a superseded config write, a removed edit), since the
 * envelopes that deleted them are gone from the log. An honest snapshot is
 * sealed from a state that applied those envelopes, so it holds their
 * deletions (Yjs keeps a deleted item's id in the delete set, or as a GC
 * struct, after its content is collected).
 */
export class StreamDeletions {
  /** Per stream key: the positions that deleted something, sorted by seq. */
  private readonly byStream = new Map<string, Array<{ seq: number; ranges: IdRange[] }>>()

  record(stream: string, seq: number, ranges: IdRange[]): void {
    if (ranges.length === 0) return
    let list = this.byStream.get(stream)
    if (!list) this.byStream.set(stream, (list = []))
    let i = list.length
    while (i > 0 && list[i - 1]!.seq > seq) i--
    if (list[i - 1]?.seq === seq) return // the same position applied twice: the same bytes
    list.splice(i, 0, { seq, ranges })
  }

  /** What the stream's positions up to `seq` deleted. */
  upTo(stream: string, seq: number): IdRange[] {
    const out: IdRange[] = []
    for (const p of this.byStream.get(stream) ?? []) {
      if (p.seq > seq) break
      out.push(...p.ranges)
    }
    return out
  }
}

type Decoded = { structs: Array<Y.Item | Y.GC | Y.Skip>; ds: { clients: Map<number, Array<{ clock: number; len: number }>> } }

/** The explicit deletions of a decoded update (its delete set). */
export function deleteRanges(ds: Decoded['ds']): IdRange[] {
  const out: IdRange[] = []
  for (const [client, ranges] of ds.clients) for (const { clock, len } of ranges) out.push({ client, clock, len })
  return out
}

/**
 * The explicit deletions of a Yjs v1 update. Its delete set comes last and
 * ends with the var-uint length of its last range, never 0, so an update
 * that deletes nothing ends with the 0 that counts no clients: most
 * updates are told by their last byte, without being decoded.
 */
export function updateDeletions(update: Uint8Array): IdRange[] {
  if (update.length === 0 || update[update.length - 1] === 0) return []
  try {
    return deleteRanges((Y.decodeUpdate(update) as Decoded).ds)
  } catch {
    return []
  }
}

/**
 * How many of `ranges` a snapshot (a Yjs v1 update of a whole state) does
 * not delete: ids neither in its delete set nor held as deleted structs
 * (GC, or an item whose content was collected). All of them if it does not
 * decode (applying it says why).
 */
export function undeleted(snapshot: Uint8Array, ranges: IdRange[]): number {
  let decoded: Decoded
  try {
    decoded = Y.decodeUpdate(snapshot) as Decoded
  } catch {
    return ranges.length
  }
  const deleted = new Map<number, Array<[number, number]>>()
  const add = (client: number, from: number, to: number) => {
    let list = deleted.get(client)
    if (!list) deleted.set(client, (list = []))
    list.push([from, to])
  }
  for (const r of deleteRanges(decoded.ds)) add(r.client, r.clock, r.clock + r.len)
  for (const s of decoded.structs) {
    if (s instanceof Y.GC || (s instanceof Y.Item && s.content instanceof Y.ContentDeleted)) add(s.id.client, s.id.clock, s.id.clock + s.length)
  }
  for (const list of deleted.values()) list.sort((a, b) => a[0] - b[0])
  let missing = 0
  for (const { client, clock, len } of ranges) {
    // Walk the sorted intervals, extending what is covered from `clock`.
    let reached = clock
    for (const [from, to] of deleted.get(client) ?? []) {
      if (from > reached) break
      if (to > reached) reached = to
    }
    if (reached < clock + len) missing++
  }
  return missing
}
