import { ZERO_HASH, equalBytes, toBase64Url, type Envelope, type EnvelopeHeader, type StreamCursor } from '@kai-sync/crypto'

const keys = new WeakMap<object, string>()

interface StreamState {
  device: Uint8Array
  stream: Uint8Array
  /** Last seq applied, directly or through a snapshot. */
  seq: number
  /** The hash at `seq`: the device's own envelope, or, above `direct`, a snapshot's claim. */
  hash: Uint8Array
  /** How far the device's own envelopes, applied here and chained from seq 1 or a snapshot's claim, reach. */
  direct: number
  /**
   * Every position applied here from the device's own signed envelope, its
   * hash (and, beyond `direct`, the `prev` it named): what tells a replay
   * (same hash) from an equivocation (the device signed another envelope at
   * a position it already filled), and how far the device's own chain
   * reaches. 32 bytes a position, never the envelope's bytes.
   */
  signed: Map<number, { hash: Uint8Array; prev?: Uint8Array }>
  /** Set once the device equivocated: nothing at or after `seq` is applied any more. */
  frozen?: { seq: number; hashes: [Uint8Array, Uint8Array] }
}

/** Where an envelope stands against what this replica has applied. */
export type Position =
  | 'next' // continues its stream: apply it
  | 'covered' // a snapshot claims it: apply only what the session doc lacks
  | 'replay' // this replica applied that very envelope already
  | 'equivocation' // its device signed another envelope at this position, or its stream is frozen
  | 'fork' // it does not chain onto its predecessor
  | 'stream_not_owned' // it chains onto another device's envelope: its stream is that device's
  | 'gap' // an earlier one is missing: hold it

/**
 * Per-stream chain state: each stream's last sequence number and hash.
 * A stream is keyed by its device and its id together: the device that
 * signs it owns it, so an envelope another device signs with the same
 * stream id is a chain of its own, which never blocks the first. Snapshots
 * advance it through their covers, so a late joiner knows where every
 * stream stood without ever seeing the compacted envelopes.
 */
export class StreamLedger {
  private readonly streams = new Map<string, StreamState>()
  /** The chains sharing a stream id (one, unless a device copied another's id). */
  private readonly byStreamId = new Map<string, StreamState[]>()

  /**
   * The key of a (device, stream) pair: computed once per header or cursor
   * object, since one envelope's is read several times on its way in.
   */
  static key(of: { device: Uint8Array; stream: Uint8Array }): string {
    let key = keys.get(of)
    if (key === undefined) keys.set(of, (key = `${toBase64Url(of.stream)}.${toBase64Url(of.device)}`))
    return key
  }

  /**
   * Classifies an envelope against the ledger, or against `tip` when an
   * envelope of the same stream was already found `next` in this batch.
   */
  position(env: Pick<Envelope, 'header' | 'hash'>, tip?: Pick<Envelope, 'header' | 'hash'>): Position {
    const h = env.header
    const s = this.streams.get(StreamLedger.key(h))
    if (s?.frozen && h.seq >= s.frozen.seq) return 'equivocation'
    const seq = tip?.header.seq ?? s?.seq ?? 0
    // Hashes (computed on first read) are read only when compared: the
    // common case, the next envelope of a stream, needs none.
    if (h.seq === seq + 1) {
      if (equalBytes(h.prev, tip?.hash ?? s?.hash ?? ZERO_HASH)) return 'next'
      // A snapshot's claim is no proof of what the device signed there: the
      // device's own signature on its successor is.
      return !tip && s && s.seq > s.direct ? 'next' : 'fork'
    }
    if (h.seq > seq + 1) return this.chainsOntoAnother(h) ? 'stream_not_owned' : 'gap'
    const known = tip && h.seq === tip.header.seq ? tip.hash : s?.signed.get(h.seq)?.hash
    if (known) return equalBytes(env.hash, known) ? 'replay' : 'equivocation'
    return 'covered'
  }

  /**
   * True if the envelope names as its predecessor an envelope another
   * device signed on the same stream id: a device continuing a stream it
   * did not open. Until that envelope is known here it is only a gap (held,
   * never applied); either way it never joins the other device's chain.
   */
  private chainsOntoAnother(h: Pick<EnvelopeHeader, 'device' | 'stream' | 'seq' | 'prev'>): boolean {
    const others = this.byStreamId.get(toBase64Url(h.stream))
    if (!others) return false
    return others.some((o) => {
      const predecessor = o.signed.get(h.seq - 1)?.hash
      return predecessor !== undefined && !equalBytes(o.device, h.device) && equalBytes(predecessor, h.prev)
    })
  }

  /** The hash of the device's own envelope this replica applied at that position, if any. */
  signedAt(h: Pick<EnvelopeHeader, 'device' | 'stream'>, seq: number): Uint8Array | undefined {
    return this.streams.get(StreamLedger.key(h))?.signed.get(seq)?.hash
  }

  /** Records an envelope applied in order. */
  advance(h: Pick<EnvelopeHeader, 'stream' | 'seq' | 'device'>, hash: Uint8Array): void {
    const s = this.state(h)
    s.seq = h.seq
    s.hash = hash
    s.direct = h.seq
    s.signed.set(h.seq, { hash })
  }

  /**
   * Records a position a snapshot claimed and whose envelope then brought
   * what the snapshot lacked. If it continues the device's own chain, that
   * chain reaches further, whatever the snapshot claimed beyond it: its
   * compaction can then cover (and delete) those envelopes.
   */
  applied(h: Pick<EnvelopeHeader, 'stream' | 'seq' | 'device' | 'prev'>, hash: Uint8Array): void {
    const s = this.state(h)
    // A copy: `prev` is a view into the envelope's bytes, which compaction frees.
    s.signed.set(h.seq, { hash, prev: h.prev.slice() })
    if (h.seq === s.seq) s.hash = hash
    for (let next = s.signed.get(s.direct + 1); next?.prev && equalBytes(next.prev, s.signed.get(s.direct)?.hash ?? ZERO_HASH); next = s.signed.get(s.direct + 1)) {
      s.direct++
    }
  }

  /** Stops a stream at the position its device signed twice; returns false if it was already frozen. */
  freeze(h: Pick<EnvelopeHeader, 'stream' | 'seq' | 'device'>, hashes: [Uint8Array, Uint8Array]): boolean {
    const s = this.state(h)
    if (s.frozen && s.frozen.seq <= h.seq) return false
    s.frozen = { seq: h.seq, hashes }
    return true
  }

  /** Where a stream was frozen, and the two hashes its device signed there. */
  frozenAt(h: Pick<EnvelopeHeader, 'device' | 'stream'>): { seq: number; hashes: [Uint8Array, Uint8Array] } | undefined {
    return this.streams.get(StreamLedger.key(h))?.frozen
  }

  /** The streams a device signed, as far as this replica knows, and where each stands. */
  streamsOf(device: Uint8Array): Array<{ stream: Uint8Array; seq: number }> {
    return [...this.streams.values()].filter((s) => s.direct > 0 && equalBytes(s.device, device)).map((s) => ({ stream: s.stream, seq: s.seq }))
  }

  /** Records a snapshot's covers; returns true if it brought anything new. */
  cover(covers: StreamCursor[]): boolean {
    let advanced = false
    for (const c of covers) {
      const s = this.state(c)
      if (s.seq >= c.seq) continue
      s.seq = c.seq
      s.hash = c.hash.slice() // not a view that keeps the whole snapshot alive
      advanced = true
    }
    return advanced
  }

  /** True if every cursor is at or behind what this replica has. */
  dominates(covers: StreamCursor[]): boolean {
    return covers.every((c) => (this.streams.get(StreamLedger.key(c))?.seq ?? 0) >= c.seq)
  }

  seqOf(of: Pick<EnvelopeHeader, 'device' | 'stream'>): number {
    return this.streams.get(StreamLedger.key(of))?.seq ?? 0
  }

  /**
   * Every stream's position: what a snapshot made now covers. Where a
   * snapshot's claim reaches beyond the device's own chain, both: the claim
   * (so the snapshot that made it can be replaced) and the chain's tip (so
   * the envelopes below it can be; a claim whose chain the log does not
   * hold deletes none of them, see CoverChains).
   */
  cursors(): StreamCursor[] {
    const out: StreamCursor[] = []
    for (const s of this.streams.values()) {
      if (s.seq === 0) continue
      out.push({ device: s.device, stream: s.stream, seq: s.seq, hash: s.hash })
      const tip = s.signed.get(s.direct)
      if (s.direct > 0 && s.direct < s.seq && tip) out.push({ device: s.device, stream: s.stream, seq: s.direct, hash: tip.hash })
    }
    return out
  }

  private state(of: { device: Uint8Array; stream: Uint8Array }): StreamState {
    const key = StreamLedger.key(of)
    let s = this.streams.get(key)
    if (!s) {
      // Copies: the ids are views into an envelope's bytes.
      this.streams.set(key, (s = { device: of.device.slice(), stream: of.stream.slice(), seq: 0, hash: ZERO_HASH, direct: 0, signed: new Map() }))
      const id = toBase64Url(of.stream)
      const shared = this.byStreamId.get(id)
      if (shared) shared.push(s)
      else this.byStreamId.set(id, [s])
    }
    return s
  }
}
