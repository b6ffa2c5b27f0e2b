import { decodeEnvelope, toBase64Url, type Envelope } from '@kai-sync/crypto'
import { CloseCode, Refusal } from './close-codes'

/** A stream id more than one device claims (a snapshot can name any device): its owner is not enforced. */
const CONTESTED = ''

/**
 * Where each stream of a room stands at the relay, by the rules replicas
 * apply (a stream is its device's; its chain is kept per device and
 * stream): the last seq of each (device, stream) the room merged, and the
 * device that opened each stream id. The relay merges one update at a
 * time, so the first envelope it takes from its clients at a position is
 * the only one they can put there, and every replica syncing through it
 * sees the same. (A rival another relay took first still reaches the log:
 * see check's `rivalsAllowed` and RivalEnvelopes.)
 * Whether an envelope chains onto its predecessor is left to the replicas
 * (they all see the same log): no hash is computed here. O(streams) per
 * room, however long the log.
 */
export class StreamIndex {
  private readonly tips = new Map<string, number>()
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
        for (const c of h.covers) this.claim(toBase64Url(c.stream), toBase64Url(c.device))
        continue
      }
      if (h.kind === 'presence') continue
      const stream = toBase64Url(h.stream)
      const device = toBase64Url(h.device)
      this.claim(stream, device)
      const key = `${stream}.${device}`
      if ((this.tips.get(key) ?? 0) < h.seq) this.tips.set(key, h.seq)
    }
  }

  private claim(stream: string, device: string): void {
    const owner = this.owners.get(stream)
    if (owner === undefined) this.owners.set(stream, device)
    else if (owner !== device) this.owners.set(stream, CONTESTED)
  }

  /**
   * Refuses, with 4403, a new update or control envelope on a stream id
   * another device opened, or at a position of its stream the room already
   * holds (an equivocation, or the same envelope stored twice).
   * `rivalsAllowed` (from a federated peer relay): a position the room
   * holds is not refused. The peer took that envelope first, so the device
   * signed two there and gave each relay one: refusing it would close the
   * link, and with it every honest stream between the two relays, and
   * leave this relay's clients blind to the equivocation. Taken, it reaches
   * them, and every replica holding both freezes the stream there.
   */
  check(fresh: Envelope[], rivalsAllowed = false): void {
    const tips = new Map<string, number>()
    const owners = new Map<string, string>()
    for (const env of [...fresh].sort((a, b) => a.header.seq - b.header.seq)) {
      const h = env.header
      if (h.kind === 'snapshot' || h.kind === 'presence') continue
      const stream = toBase64Url(h.stream)
      const device = toBase64Url(h.device)
      const owner = owners.get(stream) ?? this.owners.get(stream)
      if (owner !== undefined && owner !== CONTESTED && owner !== device) {
        throw new Refusal(CloseCode.Forbidden, 'an envelope on a stream another device opened: a stream is its device\'s')
      }
      const key = `${stream}.${device}`
      const tip = tips.get(key) ?? this.tips.get(key) ?? 0
      if (h.seq <= tip) {
        if (rivalsAllowed) continue
        throw new Refusal(CloseCode.Forbidden, `equivocation: this room already holds seq ${h.seq} of the device's stream (at seq ${tip} now)`)
      }
      tips.set(key, h.seq)
      owners.set(stream, device)
    }
  }
}
