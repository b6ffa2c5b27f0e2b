import { equalBytes, toBase64Url, type Envelope, type StreamCursor } from '@kai-sync/crypto'

/**
 * What the snapshots staying in a room may replace: only envelopes on the
 * chain that ends at a cover's hash, walked back through the `prev` hashes
 * of the envelopes the room's log holds. A cover is its signer's claim; the
 * chain below it is the streams' own devices' signatures, so a snapshot
 * claiming a stream up to a seq or hash that stream never signed deletes
 * none of its envelopes. Built only for an update that deletes.
 *
 * `signersOwn` (the relay): a snapshot also holds every envelope of its
 * signer's own streams up to its cover's seq, chain or not. There the chain
 * proves nothing the cover does not: claim and chain are one device's
 * signatures. And the relay may hold that chain only in part: a device
 * that wrote and compacted while offline sends the envelopes the relay
 * never got as tombstones, so the walk from its cover breaks above the
 * envelopes it did get, and the device would be refused for good. A device
 * deleting its own envelopes needs no walk anyway: it can always sign a
 * cover at its stream's tip.
 */
export class CoverChains {
  /** The log's update and control envelopes by (stream, device, seq). */
  private readonly at = new Map<string, Envelope[]>()
  private readonly walked = new Map<string, Set<string>>()

  constructor(
    envelopes: Iterable<Envelope>,
    private readonly options: { signersOwn?: boolean } = {},
  ) {
    for (const env of envelopes) {
      const h = env.header
      if (h.kind !== 'update' && h.kind !== 'control') continue
      const key = position(streamKey(h), h.seq)
      const list = this.at.get(key)
      if (list) list.push(env)
      else this.at.set(key, [env])
    }
  }

  /**
   * True if a cover of `snapshots` holds `env`: an update or control on the
   * chain ending at the cover of its stream; an older snapshot, if each of
   * its covers lies on such a chain (so the newer one knows all it knew).
   */
  holds(snapshots: Envelope[], env: Envelope): boolean {
    const h = env.header
    if (h.kind === 'snapshot') return h.covers.every((c) => this.onChain(snapshots, streamKey(c), c.seq, c.hash))
    return this.onChain(snapshots, streamKey(h), h.seq, env.hash)
  }

  private onChain(snapshots: Envelope[], stream: string, seq: number, hash: Uint8Array): boolean {
    const wanted = `${seq}:${toBase64Url(hash)}`
    for (const s of snapshots) {
      const own = this.options.signersOwn === true
      for (const c of s.header.covers) {
        if (c.seq < seq || streamKey(c) !== stream) continue
        if ((own && equalBytes(c.device, s.header.device)) || this.chain(stream, c).has(wanted)) return true
      }
    }
    return false
  }

  /** The (seq, hash) positions from the cover down: its own claim, then each `prev` an envelope found there names. */
  private chain(stream: string, c: StreamCursor): Set<string> {
    const memo = `${stream}:${c.seq}:${toBase64Url(c.hash)}`
    const known = this.walked.get(memo)
    if (known) return known
    const out = new Set<string>()
    let hash = c.hash
    for (let seq = c.seq; seq > 0; seq--) {
      out.add(`${seq}:${toBase64Url(hash)}`)
      const env = this.at.get(position(stream, seq))?.find((e) => equalBytes(e.hash, hash))
      if (!env) break
      hash = env.header.prev
    }
    this.walked.set(memo, out)
    return out
  }
}

function streamKey(c: { device: Uint8Array; stream: Uint8Array }): string {
  return `${toBase64Url(c.stream)}.${toBase64Url(c.device)}`
}

function position(stream: string, seq: number): string {
  return `${stream}:${seq}`
}
