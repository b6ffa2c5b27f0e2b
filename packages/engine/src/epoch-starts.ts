import { KaiError } from '@kai-sync/model'
import { decodeEnvelope, equalBytes, type EnvelopeHeader, type KeyGrant } from '@kai-sync/crypto'
import type { StreamLedger } from './stream-ledger'

/**
 * When each key epoch started, as the owner's key grants say, and the rule
 * built on it: an envelope sealed under epoch e after an epoch newer than e
 * had started is stale, and refused.
 *
 * Removing a device starts a new epoch whose key the removed device never
 * gets; the owner dates every grant of it with the removal's issuedAt. A
 * writer that has not heard of the removal keeps sealing under the old
 * epoch, which the removed device can read. Every replica that has seen the
 * owner's grants (all public in the wire doc, never deleted) refuses those
 * envelopes alike; the writer, once it holds the new key, seals a snapshot
 * under it that covers them (see `hasStaleOwn`), so nothing it wrote is
 * lost and the old-epoch copies leave the log. Only the owner's grants
 * count: a writer also grants keys (to a device it enrolled), and must not
 * be able to declare everyone's envelopes stale.
 *
 * The relay applies the same rule with the same class (no `self`: it
 * refuses every stale envelope, with 4403), so a stale envelope is refused
 * alike by the replicas and the relay.
 */
export class EpochStarts {
  /** Epoch -> its earliest start (ms), newest epoch first. */
  private starts: Array<[epoch: number, start: number]> = []

  /** `self`: this device, whose own stale envelopes it applies (see `refusal`); none at the relay. */
  constructor(private readonly self: Uint8Array | null = null) {}

  /**
   * Records the start a key grant dates, if it is one that dates an epoch:
   * signed for this session by its owner (the genesis subject). The caller
   * has verified its signature. Returns true if the start is new or earlier.
   */
  recordGrant(grant: Pick<KeyGrant, 'sessionId' | 'issuer' | 'epoch' | 'issuedAt'>, sessionId: string, owner: Uint8Array): boolean {
    return datesEpoch(grant, sessionId, owner) && this.record(grant.epoch, grant.issuedAt)
  }

  /** A copy to try more starts on (the relay, for the grants of an update it has not merged yet). */
  copy(): EpochStarts {
    const out = new EpochStarts(this.self)
    out.starts = [...this.starts]
    return out
  }

  /** Records a start; returns true if it is new or earlier than the one known. */
  record(epoch: number, start: number): boolean {
    const known = this.starts.find(([e]) => e === epoch)
    if (known && known[1] <= start) return false
    this.starts = [...this.starts.filter(([e]) => e !== epoch), [epoch, start] as [number, number]].sort((a, b) => b[0] - a[0])
    return true
  }

  /**
   * Why the intake refuses an envelope as stale, or null. This device's own
   * are applied all the same: after a reload they may be the only copy of
   * what it wrote, and it re-seals them (`hasStaleOwn`) as soon as it can.
   */
  refusal(h: Pick<EnvelopeHeader, 'epoch' | 'createdAt' | 'device'>): KaiError | null {
    const stale = this.staleness(h)
    return stale && !(this.self && equalBytes(h.device, this.self)) ? stale : null
  }

  /** Why an envelope with this header is stale, or null. A loop over the few epochs a session has. */
  staleness(h: Pick<EnvelopeHeader, 'epoch' | 'createdAt'>): KaiError | null {
    for (const [epoch, start] of this.starts) {
      if (epoch <= h.epoch) break
      if (h.createdAt > start) return new KaiError('stale_epoch', `sealed under epoch ${h.epoch} after epoch ${epoch} started`)
    }
    return null
  }
}

/** True if `grant` dates the start of its epoch: the owner's, for this session (only the owner's count; see EpochStarts). */
export function datesEpoch(grant: Pick<KeyGrant, 'sessionId' | 'issuer'>, sessionId: string, owner: Uint8Array): boolean {
  return grant.sessionId === sessionId && equalBytes(grant.issuer, owner)
}

/**
 * True if the log holds an envelope `device` signed that the rule refuses,
 * and an envelope sealed now under `current` would not be: then a snapshot
 * under `current` re-seals what the stale ones carried. Read only when a
 * start or a key is new, never per envelope.
 */
export function hasStaleOwn(log: Uint8Array[], device: Uint8Array, starts: EpochStarts, current: number, now: number): boolean {
  if (starts.staleness({ epoch: current, createdAt: now })) return false
  return log.some((bytes) => {
    try {
      const h = decodeEnvelope(bytes).header
      return equalBytes(h.device, device) && starts.staleness(h) !== null
    } catch {
      return false
    }
  })
}

/**
 * True if the log holds an envelope another device signed that the rule
 * refuses now, and `ledger` shows this replica applied it: it came before
 * the start did. The replicas that knew the start refused it; if its writer
 * never re-seals it (it is gone, or the relay shut it out, before it heard
 * of the removal) only a snapshot of a replica that holds its content
 * brings them level. Read only when a start or a key is new.
 */
export function hasStaleApplied(log: Uint8Array[], self: Uint8Array, starts: EpochStarts, ledger: StreamLedger): boolean {
  return log.some((bytes) => {
    try {
      const env = decodeEnvelope(bytes)
      const h = env.header
      if (h.kind === 'presence' || equalBytes(h.device, self) || starts.staleness(h) === null) return false
      const applied = ledger.signedAt(h, h.seq)
      return applied !== undefined && equalBytes(applied, env.hash)
    } catch {
      return false
    }
  })
}
