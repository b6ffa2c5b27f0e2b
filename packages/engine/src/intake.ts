import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { KaiError, toKaiError, type ErrorCode, type SessionDoc } from '@kai-sync/model'
import {
  deriveClientId,
  equalBytes,
  openEnvelope,
  toBase64Url,
  verifyEnvelope,
  type Envelope,
  type SessionKeyring,
  type SignatureVerifier,
} from '@kai-sync/crypto'
import type { Roster } from './roster'
import { StreamLedger } from './stream-ledger'
import type { StreamClocks } from './stream-clocks'
import { undeleted, type IdRange, type StreamDeletions } from './stream-deletions'
import { docContainsUpdate } from './contains-update'
import type { EpochStarts } from './epoch-starts'
import { ENVELOPE_ORIGIN } from './origins'
import { checkAuthorship } from './authorship'

/** A control message a stream carried (a step-down, say): verified, decrypted, in order. */
export interface ControlMessage {
  device: Uint8Array
  payload: Uint8Array
}

/** What the intake needs from its engine. */
export interface IntakeHost {
  readonly sessionId: string
  readonly session: SessionDoc
  readonly roster: Roster
  readonly keys: SessionKeyring
  readonly verifier: SignatureVerifier
  readonly ledger: StreamLedger
  readonly clocks: StreamClocks
  readonly deletions: StreamDeletions
  readonly epochs: EpochStarts
  readonly maxHeld: number
  readonly stats: { applied: number; snapshots: number }
  /** Runs a remote transaction without local-change capture (see `apply`). */
  applyRemotely(fn: () => void): void
  report(reason: KaiError, held: boolean, env?: Envelope): void
}

interface Opened {
  env: Envelope
  plaintext: Uint8Array
}

/** Envelopes of a batch whose position their device already signed another envelope at, each with that other hash. */
type Rivals = Map<Envelope, Uint8Array>

/**
 * The receiving half of the engine: decides for each arriving envelope
 * whether to apply, hold (a gap, an unknown signer, a missing key), drop
 * (a snapshot already brought it) or refuse it; verifies and decrypts the
 * ones worth it concurrently; applies snapshots then each stream in order,
 * all in one session transaction.
 */
export class Intake {
  private readonly held = new Map<string, { env: Envelope; code: ErrorCode }>()
  /** Held envelopes already reported, so a retry that holds again stays quiet. */
  private readonly heldReported = new Set<string>()
  /** Snapshots judged over-claims since open (see judgeSnapshot). */
  private overClaims = 0
  /** The Yjs client id each (device, stream) owns: a hash, worth computing once per stream rather than per envelope. */
  private readonly ownedClients = new Map<string, number>()

  constructor(private readonly host: IntakeHost) {}

  get heldCount(): number {
    return this.held.size
  }

  /** How many envelopes are held, by what each waits for. */
  heldByCode(): Partial<Record<ErrorCode, number>> {
    const counts: Partial<Record<ErrorCode, number>> = {}
    for (const { code } of this.held.values()) counts[code] = (counts[code] ?? 0) + 1
    return counts
  }

  /** The signer of each held envelope (base64url), one entry per envelope. */
  heldSigners(): string[] {
    return [...this.held.values()].map((h) => toBase64Url(h.env.header.device))
  }

  /** Takes every held envelope out, to be tried again. */
  takeHeld(): Envelope[] {
    const all = [...this.held.values()].map((h) => h.env)
    this.held.clear()
    return all
  }

  /** Takes out the held envelopes `pick` selects. */
  takeHeldWhere(pick: (env: Envelope, code: ErrorCode) => boolean): Envelope[] {
    const taken: Envelope[] = []
    for (const [key, { env, code }] of this.held) {
      if (!pick(env, code)) continue
      this.held.delete(key)
      this.heldReported.delete(key)
      taken.push(env)
    }
    return taken
  }

  /**
   * A repair: applies envelopes this device signed itself though their
   * streams have a gap (it trusts its own signature), each stream in order,
   * and moves the ledger past them, so a snapshot made next covers them and
   * every other replica drops the copies it holds. Returns how many applied.
   */
  async applyOwn(envelopes: Envelope[]): Promise<number> {
    const opened = (await Promise.all(envelopes.map((env) => this.open(env)))).filter((o): o is Opened => o !== null)
    opened.sort((a, b) => StreamLedger.key(a.env.header).localeCompare(StreamLedger.key(b.env.header)) || a.env.header.seq - b.env.header.seq)
    let applied = 0
    this.host.applyRemotely(() => {
      for (const { env, plaintext } of opened) {
        const h = env.header
        if (h.seq <= this.host.ledger.seqOf(h)) continue
        if (h.kind === 'update' && !this.applyUpdate(env, plaintext)) continue
        // Its own envelopes, not checked for authorship: their reach read from the bytes (a rare repair).
        if (h.kind === 'update') this.host.clocks.mark(StreamLedger.key(h), h.seq, Y.parseUpdateMeta(plaintext).to.get(deriveClientId(h.device, h.stream)) ?? 0)
        this.host.ledger.advance(h, env.hash)
        applied++
      }
    })
    return applied
  }

  /**
   * Processes one batch; returns what it applied, controls included, and
   * how many snapshots over-claimed or were a writer's refused as stale
   * (this replica's content is to be re-published).
   */
  async round(batch: Envelope[]): Promise<{ progressed: boolean; controls: ControlMessage[]; overClaims: number }> {
    const rivals: Rivals = new Map()
    const stale: Envelope[] = []
    const ready = this.admit(batch, rivals, stale)
    const staleAnswers = stale.length === 0 ? 0 : await this.verifiedCount(stale)
    if (ready.length === 0) return { progressed: false, controls: [], overClaims: staleAnswers }
    const opening = Promise.all(ready.map((env) => this.open(env)))
    // The chain hashes the ledger will record, computed while the platform verifies and decrypts.
    for (const env of ready) void env.hash
    const opened = (await opening).filter((o): o is Opened => o !== null)
    opened.sort((a, b) => Number(b.env.header.kind === 'snapshot') - Number(a.env.header.kind === 'snapshot') || a.env.header.seq - b.env.header.seq)
    const controls: ControlMessage[] = []
    let progressed = false
    const before = this.overClaims
    this.host.applyRemotely(() => {
      progressed = this.apply(opened, controls, rivals)
    })
    return { progressed, controls, overClaims: this.overClaims - before + staleAnswers }
  }

  /**
   * How many of these refused snapshots carry their signer's signature: a
   * writer's snapshot refused as stale is answered as an over-claim is.
   * Its deletions stand in the log while its content is refused, and what
   * they deleted is back only once its writer re-seals it; if the writer
   * is gone (lost, or shut out) before it hears of the new epoch, a replica
   * that holds that content must. A forged one asks for nothing.
   */
  private async verifiedCount(snapshots: Envelope[]): Promise<number> {
    const verified = await Promise.all(snapshots.map((env) => verifyEnvelope(env, this.host.verifier).then(() => 1, () => 0)))
    return verified.reduce<number>((a, b) => a + b, 0)
  }

  /**
   * Whether a snapshot's covers claim positions whose content its state
   * does not hold, judged against what this replica knows those positions
   * reach (StreamClocks) and deleted (StreamDeletions): a cheat's empty or
   * old snapshot with covers copied from honest streams or an honest
   * snapshot, or one that holds every struct but leaves deletions out (a
   * later joiner would see deleted items again). The relay, which sees
   * only ciphertext, lets such a snapshot delete what its covers chain down
   * to; a device joining later through it would miss that content for
   * good, so the replicas that hold it re-publish it (SyncEngine seals a
   * snapshot of its whole state). Reported as `over_claim`; the snapshot is
   * still applied (it may hold content of its own). Only for snapshots, and
   * only against positions this replica applied or sealed as envelopes: a
   * snapshot's own state is not taken as what a position reaches (a cheat
   * could then make honest snapshots look short).
   */
  private judgeSnapshot(env: Envelope, plaintext: Uint8Array): void {
    const h = env.header
    let state: Map<number, number>
    try {
      state = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(plaintext))
    } catch {
      return // applying it says why
    }
    const { ledger, clocks, deletions } = this.host
    const short: string[] = []
    const deleted: IdRange[] = []
    for (const c of h.covers) {
      if (ledger.frozenAt(c)) continue
      const key = StreamLedger.key(c)
      deleted.push(...deletions.upTo(key, c.seq))
      const known = clocks.reachedAt(key, c.seq)
      if (known === 0) continue
      const held = state.get(deriveClientId(c.device, c.stream)) ?? 0
      if (held < known) short.push(`${toBase64Url(c.stream).slice(0, 8)} seq ${c.seq} (clock ${held} of ${known})`)
    }
    // Decoded again only when a covered position deleted something (a
    // snapshot is judged once per compaction, not per update).
    const missing = deleted.length > 0 ? undeleted(plaintext, deleted) : 0
    if (missing > 0) short.push(`${missing} of the ${deleted.length} deletions they made`)
    if (short.length === 0) return
    this.overClaims++
    this.host.report(new KaiError('over_claim', `the snapshot claims positions it does not hold: ${short.join(', ')}`), false, env)
  }

  /** The envelopes worth verifying now; holds, drops or rejects the rest. */
  private admit(batch: Envelope[], rivals: Rivals, staleSnapshots: Envelope[]): Envelope[] {
    const { roster, ledger } = this.host
    const ready: Envelope[] = []
    const tips = new Map<string, Envelope>()
    batch.sort((a, b) => a.header.seq - b.header.seq)
    for (const env of batch) {
      const h = env.header
      if (h.sessionId !== this.host.sessionId) {
        this.reject(env, new KaiError('wrong_session', `envelope for ${h.sessionId.slice(0, 40)}`))
        continue
      }
      if (h.kind === 'presence') {
        this.reject(env, new KaiError('malformed', 'a presence state does not belong in the log'))
        continue
      }
      const member = roster.member(h.device)
      if (!member) {
        this.hold(env, new KaiError('unknown_signer', 'held until the roster entry of its device arrives'))
        continue
      }
      // A writer writes anywhere; a reader only what its own stream may carry
      // (mayWrite), and no snapshot. The member is looked up once.
      const writer = member.role === 'owner' || member.role === 'writer'
      if (!writer && (h.kind === 'snapshot' || !roster.mayWrite(h.device, h.stream, h.seq))) {
        this.reject(env, new KaiError('unauthorized_signer', `a ${member.role} may not write this`))
        continue
      }
      if (!this.host.keys.has(h.epoch)) {
        this.hold(env, new KaiError('wrong_epoch', `held until the key of epoch ${h.epoch} arrives`))
        continue
      }
      const stale = this.host.epochs.refusal(h)
      if (stale) {
        this.reject(env, stale)
        if (h.kind === 'snapshot') staleSnapshots.push(env) // a writer's: see verifiedCount
        continue
      }
      if (h.kind === 'snapshot') {
        // Opened even when this replica is past its covers: a snapshot may
        // hold more than they claim, and a replica behind them applies it
        // (see apply). One per compaction, not per update.
        ready.push(env)
        continue
      }
      const key = StreamLedger.key(h)
      const tip = tips.get(key)
      const position = ledger.position(env, tip)
      if (position === 'next') {
        tips.set(key, env)
        ready.push(env)
      } else if (position === 'covered') {
        ready.push(env) // applied if its structs are not all in the session doc yet
      } else if (position === 'gap') {
        this.hold(env, new KaiError('gap', `seq ${h.seq} held until seq ${ledger.seqOf(h) + 1} arrives`))
      } else if (position === 'equivocation') {
        // Its rival is known only if the stream is not frozen yet; both
        // must verify before the device is held to having signed them.
        const rival = tip && tip.header.seq === h.seq ? tip.hash : ledger.signedAt(h, h.seq)
        if (rival) {
          rivals.set(env, rival)
          ready.push(env)
        } else this.refuseFrozen(env)
      } else {
        this.reject(env, new KaiError(position, `seq ${h.seq} of its stream`))
      }
    }
    return ready
  }

  /**
   * Verifies and decrypts at once: both only read the envelope, nothing is
   * applied unless both succeed, and it saves a round trip through the
   * platform's crypto on every arrival. A bad signature is the reason
   * reported when both fail.
   */
  private async open(env: Envelope): Promise<Opened | null> {
    const [verified, opened] = await Promise.allSettled([verifyEnvelope(env, this.host.verifier), openEnvelope(env, this.host.keys)])
    try {
      if (verified.status === 'rejected') throw verified.reason
      if (opened.status === 'rejected') throw opened.reason
      if (env.header.kind === 'update') checkClientIds(env, opened.value, this.ownedClient(env.header))
      return { env, plaintext: opened.value }
    } catch (e) {
      this.reject(env, toKaiError(e))
      return null
    }
  }

  private ownedClient(h: Envelope['header']): number {
    const key = StreamLedger.key(h)
    let id = this.ownedClients.get(key)
    if (id === undefined) this.ownedClients.set(key, (id = deriveClientId(h.device, h.stream)))
    return id
  }

  /** Inside one session transaction: snapshots first, then each stream in order. */
  private apply(opened: Opened[], controls: ControlMessage[], rivals: Rivals): boolean {
    const { ledger, stats } = this.host
    let progressed = false
    if (rivals.size > 0) this.freezeEquivocations(opened, rivals)
    for (const { env, plaintext } of opened) {
      const h = env.header
      if (h.kind === 'snapshot') {
        this.judgeSnapshot(env, plaintext)
        // Dropped only if this replica is past its covers AND has all it holds.
        if ((ledger.dominates(h.covers) && docContainsUpdate(this.host.session.doc, plaintext)) || !this.applyUpdate(env, plaintext)) continue
        ledger.cover(h.covers)
        stats.snapshots++
        progressed = true
        continue
      }
      const position = ledger.position(env)
      if (position === 'gap') {
        this.hold(env, new KaiError('gap', `seq ${h.seq}: an earlier envelope of its stream failed`))
        continue
      }
      if (position === 'equivocation') {
        this.refuseFrozen(env)
        continue
      }
      if (position === 'covered') {
        // A snapshot claims this position, but it suppresses only what it
        // holds: an update whose structs or deletions the session doc lacks
        // is applied (Yjs integrates only what is missing).
        if (h.kind !== 'update' || docContainsUpdate(this.host.session.doc, plaintext)) continue
        const authored = this.authored(env, plaintext)
        if (authored === null || !this.applyUpdate(env, plaintext)) continue
        this.marked(h, authored)
        this.settled(env)
        ledger.applied(h, env.hash)
        stats.applied++
        progressed = true
        continue
      }
      if (position !== 'next') continue
      if (h.kind === 'control') controls.push({ device: h.device, payload: plaintext })
      else {
        const authored = this.authored(env, plaintext)
        if (authored === null || !this.applyUpdate(env, plaintext)) continue
        this.marked(h, authored)
      }
      this.settled(env)
      ledger.advance(h, env.hash)
      stats.applied++
      progressed = true
    }
    return progressed
  }

  /**
   * Freezes each stream whose device signed two envelopes at one position,
   * both verified (the rival was applied here or opened in this batch), at
   * that position: neither, nor anything after it on that stream, applies
   * from then on, on any replica, whichever arrived first.
   */
  private freezeEquivocations(opened: Opened[], rivals: Rivals): void {
    const verified = new Set(opened.map((o) => toBase64Url(o.env.hash)))
    for (const { env } of opened) {
      const rival = rivals.get(env)
      if (!rival) continue
      const h = env.header
      const applied = this.host.ledger.signedAt(h, h.seq)
      if ((applied && equalBytes(applied, rival)) || verified.has(toBase64Url(rival))) this.host.ledger.freeze(h, [rival, env.hash])
    }
  }

  private refuseFrozen(env: Envelope): void {
    const h = env.header
    const frozen = this.host.ledger.frozenAt(h)
    const hashes = frozen ? `, signed twice at seq ${frozen.seq}: ${toBase64Url(frozen.hashes[0])} and ${toBase64Url(frozen.hashes[1])}` : ''
    this.reject(env, new KaiError('equivocation', `seq ${h.seq} of a frozen stream${hashes}`))
  }

  /** Records how far an applied update of the stream reaches and what it deleted, for judging snapshots that claim its position. */
  private marked(h: Envelope['header'], { reach, deletes }: { reach: number; deletes: IdRange[] }): void {
    const key = StreamLedger.key(h)
    this.host.clocks.mark(key, h.seq, reach)
    this.host.deletions.record(key, h.seq, deletes)
  }

  /**
   * Whether an update names only its signer as author and leaves the audit
   * log as it was (see authorship.ts). Checked here, not while opening,
   * because the verdict reads the state the update lands on, which the
   * envelopes before it in this batch are part of.
   */
  private authored(env: Envelope, plaintext: Uint8Array): { reach: number; deletes: IdRange[] } | null {
    try {
      const verdict = checkAuthorship(this.host.session.doc, toBase64Url(env.header.device), plaintext)
      if (verdict !== 'wait') return verdict
      this.hold(env, new KaiError('gap', 'held until the items its update refers to arrive'))
    } catch (e) {
      this.reject(env, toKaiError(e))
    }
    return null
  }

  /**
   * Applies one decrypted update. A writer can sign bytes Yjs cannot read;
   * Yjs then throws, possibly after integrating part of them (the same part
   * on every replica, since they all apply the same bytes). The envelope is
   * refused and the rest of the batch still applies.
   */
  private applyUpdate(env: Envelope, plaintext: Uint8Array): boolean {
    try {
      Y.applyUpdate(this.host.session.doc, plaintext, ENVELOPE_ORIGIN)
      return true
    } catch (cause) {
      this.reject(env, new KaiError('malformed', 'the decrypted update is not a Yjs update', { cause }))
      return false
    }
  }

  private hold(env: Envelope, reason: KaiError): void {
    const key = toBase64Url(env.hash)
    if (this.held.has(key)) return
    if (this.held.size >= this.host.maxHeld) {
      this.reject(env, new KaiError(reason.code, `${reason.message}; too many envelopes held, dropped`))
      return
    }
    this.held.set(key, { env, code: reason.code })
    if (this.heldReported.has(key)) return
    this.heldReported.add(key)
    this.host.report(reason, true, env)
  }

  private reject(env: Envelope, reason: KaiError): void {
    this.settled(env)
    this.host.report(reason, false, env)
  }

  private settled(env: Envelope): void {
    if (this.heldReported.size > 0) this.heldReported.delete(toBase64Url(env.hash))
  }
}

/**
 * An update may only write as the Yjs client its signer's stream owns
 * (`owned`, derived from the header's device and stream). A
 * stream's update holds the structs of one client at most, and Yjs's
 * update format names its clients first, so reading the client count and
 * the first client id decides it without parsing the structs.
 */
function checkClientIds(env: Envelope, plaintext: Uint8Array, owned: number): void {
  const h = env.header
  const foreign = h.clientIds.find((id) => id !== owned)
  if (foreign !== undefined) throw new KaiError('client_id_not_owned', `header claims client ${foreign}`)
  let clients: number
  let client = owned
  try {
    const d = decoding.createDecoder(plaintext)
    clients = decoding.readVarUint(d)
    if (clients === 1) {
      decoding.readVarUint(d) // number of structs
      client = decoding.readVarUint(d)
    }
  } catch (cause) {
    throw new KaiError('malformed', 'the decrypted update is not a Yjs update', { cause })
  }
  if (clients > 1) throw new KaiError('client_id_not_owned', `the update writes as ${clients} clients`)
  if (client !== owned) throw new KaiError('client_id_not_owned', `the update writes as client ${client}`)
}

