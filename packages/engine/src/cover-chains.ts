import { equalBytes, toBase64Url, type Envelope, type StreamCursor } from '@kai-sync/crypto'

/**
 * What the snapshots staying in a room may replace: only envelopes on the
 * chain that ends at a cover's hash, walked back through the `prev` hashes
 * of the envelopes the room's log holds. A cover is its signer's claim; the
 * chain below it is the streams' own devices' signatures, so a snapshot
 * claiming a stream up to a seq or hash that stream never signed deletes
 * none of its envelopes. Built only for an update that deletes.
 *
 * `partialLog` (the relay): the relay may hold a chain only in part, and
 * then two more rules apply. (1) A snapshot holds every envelope of its
 * signer's own streams up to its cover's seq, chain or not: a device that
 * wrote and compacted while offline sends the envelopes the relay never
 * got as tombstones, so the walk from its cover breaks above the ones it
 * did get. There the chain proves nothing the cover does not (claim and
 * chain are one device's signatures), and a device can always sign a
 * cover at its own stream's tip anyway. (2) An older snapshot's cover
 * below the point where a newer cover's walk breaks (the envelopes between
 * were compacted away by another snapshot, as concurrent compactions do)
 * is held by that newer cover. Neither gives a cheat more than it has
 * already: every envelope's position and hash is public to members, so a
 * cover naming exactly the position of an envelope, or the covers of an
 * older snapshot, holds it under the strict rule too. What the walk still
 * stops, here as on replicas, is an over-claim deleting update and control
 * envelopes of another device's stream that it does not reach.
 */
export class CoverChains {
  /** The log's update and control envelopes by (stream, device, seq). */
  private readonly at = new Map<string, Envelope[]>()
  private readonly walked = new Map<string, Walk>()

  constructor(
    envelopes: Iterable<Envelope>,
    private readonly options: { partialLog?: boolean } = {},
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
    if (h.kind === 'snapshot') return h.covers.every((c) => this.onChain(snapshots, streamKey(c), c.seq, c.hash, 'cover'))
    return this.onChain(snapshots, streamKey(h), h.seq, env.hash, 'envelope')
  }

  private onChain(snapshots: Envelope[], stream: string, seq: number, hash: Uint8Array, what: 'cover' | 'envelope'): boolean {
    const wanted = `${seq}:${toBase64Url(hash)}`
    const partial = this.options.partialLog === true
    for (const s of snapshots) {
      for (const c of s.header.covers) {
        if (c.seq < seq || streamKey(c) !== stream) continue
        if (partial && what === 'envelope' && equalBytes(c.device, s.header.device)) return true
        const walk = this.chain(stream, c)
        if (walk.positions.has(wanted) || (partial && what === 'cover' && seq < walk.brokeAt)) return true
      }
    }
    return false
  }

  /**
   * The (seq, hash) positions from the cover down: its own claim, then each
   * `prev` an envelope found there names; and the seq whose envelope the log
   * lacks, where the walk stopped (0 if it reached the stream's start).
   */
  private chain(stream: string, c: StreamCursor): Walk {
    const memo = `${stream}:${c.seq}:${toBase64Url(c.hash)}`
    const known = this.walked.get(memo)
    if (known) return known
    const positions = new Set<string>()
    let hash = c.hash
    let brokeAt = 0
    for (let seq = c.seq; seq > 0; seq--) {
      positions.add(`${seq}:${toBase64Url(hash)}`)
      const env = this.at.get(position(stream, seq))?.find((e) => equalBytes(e.hash, hash))
      if (!env) {
        brokeAt = seq
        break
      }
      hash = env.header.prev
    }
    const walk = { positions, brokeAt }
    this.walked.set(memo, walk)
    return walk
  }
}

interface Walk {
  positions: Set<string>
  brokeAt: number
}

function streamKey(c: { device: Uint8Array; stream: Uint8Array }): string {
  return `${toBase64Url(c.stream)}.${toBase64Url(c.device)}`
}

function position(stream: string, seq: number): string {
  return `${stream}:${seq}`
}
