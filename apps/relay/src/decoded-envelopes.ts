import { decodeEnvelope, type Envelope } from '@kai-sync/crypto'

/**
 * The envelopes of the update being merged, as the guard decoded them when
 * it arrived, so the room's bookkeeping after the merge (StreamIndex.add)
 * does not decode each one a second time. They are found by their bytes:
 * Yjs copies an item's content as it integrates it, so the doc holds equal
 * bytes, never the same array. Bytes equal to none of them are decoded as
 * they would be without this (decoding is a function of the bytes alone).
 */
export class DecodedEnvelopes {
  /** By the last bytes of the envelope (its signature), then compared in full. */
  private readonly byTail = new Map<number, Envelope[]>()

  /** Runs `merge` with `envelopes` known, and forgets them after: nothing here outlives one merge. */
  during<T>(envelopes: Iterable<Envelope>, merge: () => T): T {
    for (const env of envelopes) {
      const tail = tailOf(env.bytes)
      const list = this.byTail.get(tail)
      if (list) list.push(env)
      else this.byTail.set(tail, [env])
    }
    try {
      return merge()
    } finally {
      this.byTail.clear()
    }
  }

  /** What these bytes decode to: a known envelope of equal bytes, or else decoded now (throwing as decodeEnvelope does). */
  decode(bytes: Uint8Array): Envelope {
    const list = this.byTail.size === 0 ? undefined : this.byTail.get(tailOf(bytes))
    if (list) for (const env of list) if (Buffer.compare(env.bytes, bytes) === 0) return env
    return decodeEnvelope(bytes)
  }
}

/** The last six bytes (of the signature) as a number: a map key that allocates nothing; equal keys are told apart in full. */
function tailOf(bytes: Uint8Array): number {
  let n = 0
  for (let i = Math.max(0, bytes.length - 6); i < bytes.length; i++) n = n * 256 + bytes[i]!
  return n
}
