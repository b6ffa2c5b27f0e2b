import { decodeEnvelope, toBase64Url, type Envelope } from '@kai-sync/crypto'
import { CloseCode, Refusal } from './close-codes'

/** A stream id whose device the index cannot tell (see ownerOf): its owner is not enforced. */
const CONTESTED = ''

/** What a snapshot's cover claims of a stream: its device, from before any envelope (see ownerOf). */
const COVER = 0

/**
 * Where each stream of a room stands at the relay, by the rules replicas
 * apply (a stream is its device's; its chain is kept per device and
 * stream): the last seq of each (device, stream) the room merged, and the
 * device that opened each stream id. The relay merges one update at a
 * time, so the first envelope it takes from its clients at a position is
 * the only one they can put there, and every replica syncing through it
 * sees the same. (A rival or a hijack another relay took first still
 * reaches the log: see check's `fromPeer` and RivalEnvelopes.)
 * Whether an envelope chains onto its predecessor is left to the replicas
 * (they all see the same log): no hash is computed here. O(streams) per
 * room, however long the log.
 */
export class StreamIndex {
  private readonly tips = new Map<string, number>()
  /** Per stream id, per device on it: the lowest seq of its envelopes merged, or COVER. One device, unless another relay took a hijack first. */
  private readonly firsts = new Map<string, Map<string, number>>()
  /** Per stream id, its device as `firsts` tells (see ownerOf). */
  private readonly owners = new Map<string, string>()

  /**
   * Records the envelopes a transaction merged (from a client, another
   * relay or the store). Snapshot covers name the devices of the streams
   * they compacted, so a stream whose envelopes are all gone still has its
   * owner; a cover moves no tip, since it is only its signer's claim.
   * `decode` (see DecodedEnvelopes): the envelopes the guard decoded on
   * arrival are not decoded again.
   */
  add(envelopes: Uint8Array[], decode: (bytes: Uint8Array) => Envelope = decodeEnvelope): void {
    for (const bytes of envelopes) {
      let env: Envelope
      try {
        env = decode(bytes)
      } catch {
        continue // the guard let it through: not this index's to judge
      }
      const h = env.header
      if (h.kind === 'snapshot') {
        for (const c of h.covers) this.claim(toBase64Url(c.stream), toBase64Url(c.device), COVER)
        continue
      }
      if (h.kind === 'presence') continue
      const stream = toBase64Url(h.stream)
      const device = toBase64Url(h.device)
      this.claim(stream, device, h.seq)
      const key = `${stream}.${device}`
      if ((this.tips.get(key) ?? 0) < h.seq) this.tips.set(key, h.seq)
    }
  }

  private claim(stream: string, device: string, seq: number): void {
    let by = this.firsts.get(stream)
    if (by === undefined) this.firsts.set(stream, (by = new Map<string, number>()))
    const first = by.get(device)
    if (first !== undefined && first <= seq) return
    by.set(device, seq)
    this.owners.set(stream, ownerOf(by))
  }

  /**
   * Refuses, with 4403, a new update or control envelope on a stream id
   * another device opened, or at a position of its stream the room already
   * holds (an equivocation, or the same envelope stored twice).
   * `fromPeer` (a federated peer relay): neither a position the room holds
   * nor a stream another device opened is refused. The peer took that
   * envelope first, while this relay took another: the device signed two
   * at that position, or one device signed on a stream id the other's
   * clients opened, and gave each relay one. Refusing it would close the
   * link, and with it every honest stream between the two relays, and
   * leave this relay's clients blind to it. Taken, it reaches them, and
   * every replica judges it: one holding both freezes the stream there, a
   * hijack it refuses (`stream_not_owned`); ownerOf says which device the
   * stream id is from then on.
   */
  check(fresh: Envelope[], fromPeer = false): void {
    const tips = new Map<string, number>()
    const owners = new Map<string, string>()
    for (const env of [...fresh].sort((a, b) => a.header.seq - b.header.seq)) {
      const h = env.header
      if (h.kind === 'snapshot' || h.kind === 'presence') continue
      const stream = toBase64Url(h.stream)
      const device = toBase64Url(h.device)
      const owner = owners.get(stream) ?? this.owners.get(stream)
      if (!fromPeer && owner !== undefined && owner !== CONTESTED && owner !== device) {
        throw new Refusal(CloseCode.Forbidden, 'an envelope on a stream another device opened: a stream is its device\'s')
      }
      const key = `${stream}.${device}`
      const tip = tips.get(key) ?? this.tips.get(key) ?? 0
      if (h.seq <= tip) {
        if (fromPeer) continue
        throw new Refusal(CloseCode.Forbidden, `equivocation: this room already holds seq ${h.seq} of the device's stream (at seq ${tip} now)`)
      }
      tips.set(key, h.seq)
      owners.set(stream, device)
    }
  }
}

/**
 * The device a stream id is, from the lowest seq each device on it has
 * merged (`firsts`), by the replicas' rule: a device may not continue
 * another device's envelope (`stream_not_owned`), so a hijack starts above
 * the envelope it continues, and of two devices' envelopes on one stream
 * id (one relay took the hijack, another the honest envelopes, and then
 * each the other's) the one lower on it opened it. Whatever order they
 * arrived in, honest envelopes on the stream from clients are then taken
 * and a client's hijack of it still refused. CONTESTED when that does not
 * tell: a snapshot's cover names another device (only its signer's
 * claim), or two start as low.
 */
function ownerOf(firsts: Map<string, number>): string {
  let owner = CONTESTED
  let lowest = Infinity
  for (const [device, first] of firsts) {
    if (first < lowest) [owner, lowest] = [device, first]
    else if (first === lowest) owner = CONTESTED
  }
  return firsts.size > 1 && lowest === COVER ? CONTESTED : owner
}
