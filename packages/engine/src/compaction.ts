import { decodeEnvelope, type StreamCursor } from '@kai-sync/crypto'
import { StreamLedger } from './stream-ledger'

/**
 * Which log entries a snapshot with these covers replaces: updates and
 * controls at or before their stream's covered seq, and older snapshots
 * whose covers it dominates. Anything else (an offline device's envelopes
 * it never saw, a concurrent snapshot that knows more) survives. The relay
 * applies the same rule before it accepts a deletion.
 */
export function planCompaction(sessionId: string, covers: StreamCursor[]): (envelope: Uint8Array) => boolean {
  const covered = new Map(covers.map((c) => [StreamLedger.key(c.device, c.stream), c.seq]))
  const seqOf = (device: Uint8Array, stream: Uint8Array) => covered.get(StreamLedger.key(device, stream)) ?? 0
  return (bytes) => {
    let h
    try {
      h = decodeEnvelope(bytes).header
    } catch {
      return false
    }
    if (h.sessionId !== sessionId) return false
    if (h.kind === 'snapshot') return h.covers.every((c) => seqOf(c.device, c.stream) >= c.seq)
    return h.seq <= seqOf(h.device, h.stream)
  }
}
