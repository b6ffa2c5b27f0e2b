import { ZERO_HASH, equalBytes, toBase64Url, type Envelope, type EnvelopeHeader, type StreamCursor } from '@kai-sync/crypto'

interface StreamState {
  stream: Uint8Array
  /** The signing device, once an envelope of the stream was applied here. */
  device?: string
  /** Last seq applied, directly or through a snapshot. */
  seq: number
  hash: Uint8Array
  /** Last seq applied from an envelope of its own (not through a snapshot). */
  direct: number
}

/** Where an envelope stands against what this replica has applied. */
export type Position =
  | 'next' // continues its stream: apply it
  | 'covered' // a snapshot already brought it: drop silently
  | 'replay' // this replica applied that very position already
  | 'fork' // another envelope already holds its position, or it does not chain
  | 'gap' // an earlier one is missing: hold it

/**
 * Per-stream chain state: each stream's last sequence number and hash.
 * Snapshots advance it through their covers, so a late joiner knows where
 * every stream stood without ever seeing the compacted envelopes.
 */
export class StreamLedger {
  private readonly streams = new Map<string, StreamState>()

  static key(stream: Uint8Array): string {
    return toBase64Url(stream)
  }

  /**
   * Classifies an envelope against the ledger, or against `tip` when an
   * envelope of the same stream was already found `next` in this batch.
   */
  position(env: Pick<Envelope, 'header' | 'hash'>, tip?: Pick<Envelope, 'header' | 'hash'>): Position {
    const h = env.header
    const s = this.streams.get(StreamLedger.key(h.stream))
    const seq = tip?.header.seq ?? s?.seq ?? 0
    // Hashes (computed on first read) are read only when compared: the
    // common case, the next envelope of a stream, needs none.
    const last = () => tip?.hash ?? s?.hash ?? ZERO_HASH
    if (h.seq === seq + 1) return equalBytes(h.prev, last()) ? 'next' : 'fork'
    if (h.seq > seq + 1) return 'gap'
    if (h.seq === seq && seq > 0 && !equalBytes(env.hash, last())) return 'fork'
    // Positions found `next` earlier in the batch count as applied directly.
    const direct = Math.max(s?.direct ?? 0, tip?.header.seq ?? 0)
    return h.seq <= direct ? 'replay' : 'covered'
  }

  /** Records an envelope applied in order. */
  advance(h: Pick<EnvelopeHeader, 'stream' | 'seq' | 'device'>, hash: Uint8Array): void {
    const key = StreamLedger.key(h.stream)
    this.streams.set(key, { stream: h.stream, seq: h.seq, hash, direct: h.seq, device: toBase64Url(h.device) })
  }

  /** The streams a device signed, as far as this replica knows, and where each stands. */
  streamsOf(device: Uint8Array): Array<{ stream: Uint8Array; seq: number }> {
    const id = toBase64Url(device)
    return [...this.streams.values()].filter((s) => s.device === id).map((s) => ({ stream: s.stream, seq: s.seq }))
  }

  /** Records a snapshot's covers; returns true if it brought anything new. */
  cover(covers: StreamCursor[]): boolean {
    let advanced = false
    for (const c of covers) {
      const key = StreamLedger.key(c.stream)
      const s = this.streams.get(key)
      if (s && s.seq >= c.seq) continue
      const next: StreamState = { stream: c.stream, seq: c.seq, hash: c.hash, direct: s?.direct ?? 0 }
      if (s?.device) next.device = s.device
      this.streams.set(key, next)
      advanced = true
    }
    return advanced
  }

  /** True if every cursor is at or behind what this replica has. */
  dominates(covers: StreamCursor[]): boolean {
    return covers.every((c) => (this.streams.get(StreamLedger.key(c.stream))?.seq ?? 0) >= c.seq)
  }

  seqOf(stream: Uint8Array): number {
    return this.streams.get(StreamLedger.key(stream))?.seq ?? 0
  }

  /** Every stream's position: what a snapshot made now covers. */
  cursors(): StreamCursor[] {
    return [...this.streams.values()].map((s) => ({ stream: s.stream, seq: s.seq, hash: s.hash }))
  }
}
