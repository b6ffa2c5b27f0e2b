import * as Y from 'yjs'
import { ObservableV2 } from 'lib0/observable'
import { KaiError, SessionDoc, toKaiError, type ErrorCode, type Mode, type TransferType } from '@kai-sync/model'
import {
  ZERO_HASH,
  decodeEnvelope,
  defaultVerifier,
  deriveClientId,
  equalBytes,
  newStreamId,
  openEnvelope,
  sealEnvelope,
  toBase64Url,
  type BoxKey,
  type DeviceKey,
  type Envelope,
  type EnvelopeHeader,
  type Role,
  type RosterEntry,
  type SessionKey,
  type SessionKeyring,
  type SignatureVerifier,
  type StreamPosition,
} from '@kai-sync/crypto'
import type { NobleDeviceKey } from '@kai-sync/crypto/noble'
import type { WireDoc } from './wire-doc'
import { Roster } from './roster'
import { StreamLedger } from './stream-ledger'
import { StreamClocks } from './stream-clocks'
import { StreamDeletions, updateDeletions } from './stream-deletions'
import { ENVELOPE_ORIGIN, type EngineOrigin } from './origins'
import { planCompaction } from './compaction'
import { SyncStatusTracker, type StoreKind, type SyncStatus } from './sync-status'
import { Intake, type ControlMessage } from './intake'
import { Membership, parseControl, type MovedControl } from './membership'
import { EpochStarts } from './epoch-starts'
import { DroppedOwn, type DroppedOwnStore } from './dropped-own'

export interface SyncEngineOptions {
  sessionId: string
  wire: WireDoc
  device: DeviceKey
  /** This device's X25519 key: without it, new epochs' keys cannot reach it. */
  box?: BoxKey
  keys: SessionKeyring
  mode: Mode
  verifier?: SignatureVerifier
  /**
   * At most one envelope per window (default 60 ms): the first local change
   * after a quiet window is sealed at once, later ones wait for the window
   * to end and share an envelope. A 100-token/s stream makes at most
   * 1000 / window envelopes per second; a lone edit is not delayed.
   */
  batchWindowMs?: number
  /** A batch this large is sealed at once, window or not (default 256 KiB). */
  maxBatchBytes?: number
  /** Compact when the log holds this many envelopes; null never (default 500). */
  compactAfter?: number | null
  /** Wait a random 0 to this many ms before compacting, so replicas rarely compact at once (default 1000). */
  compactJitterMs?: number
  /** At most this many envelopes are held waiting for a gap, key or roster entry (default 10,000). */
  maxHeld?: number
  now?: () => number
  /**
   * Test seam: where this context's stream ids come from (default: random
   * bytes). A stream id fixes the Yjs client id, which orders concurrent
   * edits, so a seeded fuzz passes ids from its seed to replay exactly.
   */
  newStreamId?: () => Uint8Array
  /**
   * The key of an epoch in a form that can be wrapped for another device,
   * for the grants a handoff target is owed. By default the keyring's own
   * key; a device that keeps its keys non-extractable (a browser) passes
   * its one deliberate export path.
   */
  exportKey?: (epoch: number) => Promise<SessionKey>
  /**
   * Test seam: called at each step of a compaction ('sealed': the snapshot
   * exists only in memory; 'applied': it replaced the covered envelopes in
   * the wire doc, no store has it yet), so a kill test can land a
   * kill exactly there (the daemon's KAI_TEST_KILL_AT).
   */
  onCompactionStep?: (step: CompactionStep) => void
  /**
   * Test seam (default true): whether this replica re-publishes what an
   * over-claiming snapshot lied about (see `republish`). The hostile fuzz
   * turns it off for its cheating members, so that what heals is shown to
   * be the honest replicas' doing.
   */
  answerOverClaims?: boolean
  /**
   * This device's own store (never a transport) for its envelopes the log
   * lost before it re-sealed them (see DroppedOwn). Without one, they are
   * remembered only while this engine runs.
   */
  dropped?: DroppedOwnStore
}

/** A step of a compaction, for `onCompactionStep`. */
export type CompactionStep = 'sealed' | 'applied'

/** An envelope (or roster entry, or key grant) this replica did not take, and why. */
export interface Rejection {
  code: ErrorCode
  message: string
  /** True while it is kept to retry when what it waits for arrives. */
  held: boolean
  device?: string
  stream?: string
  seq?: number
}

export interface SyncEngineEvents {
  status: (status: SyncStatus) => void
  rejected: (rejection: Rejection) => void
  control: (message: ControlMessage) => void
  /** A session key this device did not have: persist it. */
  key: (key: SessionKey) => void
  /** A device took the session over from another (or from this one). */
  moved: (to: MovedControl, from: Uint8Array) => void
}

/** A device's id in the session doc: its public key, base64url. */
export function deviceIdOf(device: DeviceKey | Uint8Array): string {
  return toBase64Url(device instanceof Uint8Array ? device : device.publicKey)
}

/**
 * A stream this context signs, and where its chain stands. A seal reads and
 * advances the stream it was queued for, never whichever stream is current
 * when it finishes: a context that moves to a new stream while a seal is in
 * flight must not carry the old stream's position into the new one.
 */
interface OwnStream {
  readonly id: Uint8Array
  /** The Yjs client id the stream owns; updates made under it go into it. */
  readonly clientId: number
  seq: number
  lastHash: Uint8Array
}

function newOwnStream(device: DeviceKey, streamId: () => Uint8Array): OwnStream {
  const id = streamId()
  return { id, clientId: deriveClientId(device.publicKey, id), seq: 0, lastHash: ZERO_HASH }
}

type Tuning = Required<Pick<SyncEngineOptions, 'batchWindowMs' | 'maxBatchBytes' | 'compactAfter' | 'compactJitterMs' | 'maxHeld' | 'now'>>

/**
 * Binds a session doc to a wire doc. Local session updates are batched,
 * sealed into the wire doc's log; envelopes other replicas put there are
 * verified, decrypted and applied, each stream in order (see Intake).
 */
export class SyncEngine extends ObservableV2<SyncEngineEvents> {
  readonly session: SessionDoc
  readonly roster: Roster
  readonly wire: WireDoc
  readonly sessionId: string
  readonly device: DeviceKey
  readonly box: BoxKey | undefined
  readonly keys: SessionKeyring
  readonly verifier: SignatureVerifier
  readonly ledger = new StreamLedger()
  /** How far into its Yjs client each stream position reaches, for judging snapshots (see Intake). */
  private readonly clocks = new StreamClocks()
  /** What each stream position deleted, for the same judgement: a snapshot must hold those deletions too. */
  private readonly deletions = new StreamDeletions()
  /** When each key epoch started: envelopes sealed under an older one after that are refused. */
  readonly epochs: EpochStarts
  readonly stats = { sealed: 0, applied: 0, snapshots: 0, rejected: new Map<ErrorCode, number>() }
  /** What was refused for good since open, by code (the status shows it). */
  private readonly refused: Partial<Record<ErrorCode, number>> = {}
  private readonly options: Tuning
  private readonly onCompactionStep: ((step: CompactionStep) => void) | undefined
  private readonly answerOverClaims: boolean
  private readonly newStreamId: () => Uint8Array
  private readonly origin: EngineOrigin = Object.freeze({ source: 'engine' as const, engine: this })
  private readonly tracker: SyncStatusTracker
  private readonly intake: Intake
  private readonly membership: Membership
  private readonly dropped: DroppedOwn

  private own: OwnStream
  private unsealed: Uint8Array[] = []
  /** The stream the unsealed updates were made under. */
  private unsealedOn: OwnStream
  private unsealedBytes = 0
  private flushTimer: ReturnType<typeof setTimeout> | undefined
  private flushQueued = false
  private lastFlushAt = -Infinity
  private sealing: Promise<void> = Promise.resolve()
  private compactTimer: ReturnType<typeof setTimeout> | undefined
  /** A compaction due at once (compactJitterMs 0), queued as a microtask. */
  private compactQueued = false
  private compacting: Promise<number | null> | null = null
  private inviteTimer: ReturnType<typeof setTimeout> | undefined

  private inbox: Uint8Array[] = []
  private rosterInbox: Uint8Array[] = []
  private grantInbox: Uint8Array[] = []
  private draining: Promise<void> | null = null
  private retryHeld = false
  private destroyed = false
  /** The retirement of expired invites under way, if any (whenIdle waits for it). */
  private retiring: Promise<void> = Promise.resolve()
  /** False while open() loads what the wire doc holds: nothing is written in reaction to it yet. */
  private opened = false

  private constructor(options: SyncEngineOptions, verifier: SignatureVerifier) {
    super()
    this.sessionId = options.sessionId
    this.wire = options.wire
    this.device = options.device
    this.box = options.box
    this.keys = options.keys
    this.verifier = verifier
    this.epochs = new EpochStarts(options.device.publicKey)
    this.options = {
      batchWindowMs: options.batchWindowMs ?? 60,
      maxBatchBytes: options.maxBatchBytes ?? 256 * 1024,
      compactAfter: options.compactAfter === undefined ? 500 : options.compactAfter,
      compactJitterMs: options.compactJitterMs ?? 1000,
      maxHeld: options.maxHeld ?? 10_000,
      now: options.now ?? Date.now,
    }
    this.onCompactionStep = options.onCompactionStep
    this.answerOverClaims = options.answerOverClaims ?? true
    this.session = new SessionDoc({ device: deviceIdOf(options.device), mode: options.mode, now: this.options.now })
    this.newStreamId = options.newStreamId ?? newStreamId
    this.own = this.unsealedOn = newOwnStream(options.device, this.newStreamId)
    this.session.doc.clientID = this.own.clientId
    this.roster = new Roster(options.sessionId, verifier)
    this.tracker = new SyncStatusTracker(() => {
      this.dropped.stored((clock) => this.tracker.storedLocally(clock))
      this.emit('status', [this.status])
    })
    this.intake = new Intake({
      sessionId: this.sessionId,
      session: this.session,
      roster: this.roster,
      keys: this.keys,
      verifier,
      ledger: this.ledger,
      clocks: this.clocks,
      deletions: this.deletions,
      epochs: this.epochs,
      maxHeld: this.options.maxHeld,
      stats: this.stats,
      applyRemotely: (fn) => this.applyRemotely(fn),
      report: (reason, held, env) => this.report(reason, held, env),
    })
    this.membership = new Membership({
      sessionId: this.sessionId,
      device: this.device,
      box: this.box,
      keys: this.keys,
      roster: this.roster,
      ledger: this.ledger,
      verifier,
      epochs: this.epochs,
      log: () => this.wire.envelopes(),
      now: this.options.now,
      addRosterEntries: async (entries) => {
        this.wire.addRosterEntries(entries, this.origin)
        this.rosterInbox.push(...entries)
        await this.drain()
      },
      addKeyGrants: (grants) => this.wire.addKeyGrants(grants, this.origin),
      sendControl: (payload) => this.sendControl(payload),
      position: () => this.position,
      compact: () => this.compact(),
      keyAdded: (key) => {
        this.emit('key', [key])
        void this.drain(true)
        if (this.unsealed.length > 0) void this.flush() // held back while the key was stale
        if (this.republishPending) this.republish() // likewise
      },
      moved: (to) => this.emit('moved', [to, this.device.publicKey]),
      audit: (id, action, details) => {
        if (this.canWrite && !this.session.auditEntry(id)) this.session.appendAudit({ id, action, details })
      },
      canWrite: () => this.canWrite,
      ...(options.exportKey ? { exportKey: options.exportKey } : {}),
    })
    this.dropped = new DroppedOwn({
      sessionId: this.sessionId,
      device: options.device.publicKey,
      store: options.dropped,
      open: (env) => openEnvelope(env, this.keys).catch(() => null),
      failed: (e) => this.report(toKaiError(e), false),
    })
    this.roster.on('change', this.onRosterChange)
    this.session.doc.on('update', this.onSessionUpdate)
    this.wire.doc.on('afterTransaction', this.onWireTransaction)
    // Everything the wire doc already holds is processed like an arrival.
    this.rosterInbox.push(...this.wire.rosterEntries())
    this.grantInbox.push(...this.wire.keyGrants())
    this.inbox.push(...this.wire.envelopes())
  }

  /** Opens a session: loads what the wire doc holds, then follows it live. */
  static async open(options: SyncEngineOptions): Promise<SyncEngine> {
    const engine = new SyncEngine(options, options.verifier ?? (await defaultVerifier()))
    // What the log lost of this device's before it was re-sealed comes back
    // from the device's own store, taken in as if the log still held it.
    const restored = await engine.dropped.load(engine.wire.envelopes())
    engine.inbox.push(...restored.map((env) => env.bytes))
    // Roster changes during the load write nothing (an audit entry the
    // history already holds, a step-down already made): the history is not
    // applied yet when the roster is, and this context has no stream it
    // may write to until its client id is known to be its own.
    await engine.drain()
    const repaired = await engine.repairOwnGaps()
    // Our derived client id must be nobody else's in the doc.
    while (engine.session.doc.store.clients.has(engine.own.clientId)) engine.useStream()
    engine.opened = true
    engine.onRosterChange()
    // The repaired content reaches the others in a snapshot that covers it,
    // as does what an over-claiming snapshot in the log lied about.
    if (repaired > 0 && engine.canWrite) await engine.compact()
    // Re-sealed as soon as a key of the epoch that refuses them is here (see Membership).
    if (restored.length > 0) engine.membership.noteOwnDropped(restored.map((env) => env.header))
    if (engine.republishPending) engine.republish()
    return engine
  }

  get role(): Role | undefined {
    return this.roster.roleOf(this.device.publicKey)
  }

  get canWrite(): boolean {
    const role = this.role
    return role === 'owner' || role === 'writer'
  }

  get status(): SyncStatus {
    return this.tracker.status(this.unsealed.length, this.intake.heldByCode(), this.refused, this.role)
  }

  /**
   * Whose envelopes are held (device ids, one per envelope): a cheating
   * member's may wait forever for what never comes; an honest device's
   * should not once the network healed.
   */
  heldSigners(): string[] {
    return this.intake.heldSigners()
  }

  /** The stream this context signs: its id and last sequence number. */
  get position(): StreamPosition {
    return { stream: this.own.id, seq: this.own.seq }
  }

  /**
   * A transport or store reports what of the wire doc it holds, so the
   * status can say "saved locally" (local) or "synced" (remote).
   */
  registerStore(kind: StoreKind, name: string): { acknowledge(stateVector: Map<number, number>): void; remove(): void } {
    return this.tracker.register(kind, name, () => this.wire.doc.clientID)
  }

  /** Seals every pending local change now. */
  flush(): Promise<void> {
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    if (this.unsealed.length === 0 || !this.canWrite || this.keyIsStale()) return this.sealing
    this.lastFlushAt = this.options.now()
    const updates = this.unsealed
    const stream = this.unsealedOn
    this.unsealed = []
    this.unsealedBytes = 0
    // Every change made as the stream's client so far is in this batch (changes are queued as they are made).
    const clock = Y.getState(this.session.doc.store, stream.clientId)
    this.sealing = this.sealing.then(() => this.seal(updates, 'update', stream, clock))
    return this.sealing
  }

  /** Resolves once every arrival so far has been processed and every local change sealed. */
  async whenIdle(): Promise<void> {
    await this.retiring
    while (this.draining || this.inbox.length || this.rosterInbox.length || this.grantInbox.length) await this.drain()
    await this.membership.idle()
    await this.flush()
    if (this.compacting) await this.compacting
    await this.dropped.idle()
  }

  /**
   * Resolves once every arrival so far has been processed and every seal
   * already started has finished, sealing nothing new (unlike whenIdle):
   * a seeded test waits on it between steps so that what a step sees does
   * not depend on how fast the platform's crypto ran, without changing how
   * local changes are batched.
   */
  async whenQuiet(): Promise<void> {
    await this.retiring
    while (this.draining || this.inbox.length || this.rosterInbox.length || this.grantInbox.length) await this.drain()
    await this.membership.idle()
    await this.sealing
    if (this.compacting) await this.compacting
  }

  /**
   * Seals the whole session state as a snapshot covering every stream
   * position applied here, and deletes the envelopes it covers in the same
   * transaction. Returns how many envelopes it replaced, or null if this
   * device may not write.
   */
  compact(): Promise<number | null> {
    this.compacting ??= this.compactNow().finally(() => {
      this.compacting = null
    })
    return this.compacting
  }

  /** Seals a control message into this context's stream. */
  async sendControl(payload: Uint8Array): Promise<void> {
    await this.flush()
    const stream = this.own
    this.sealing = this.sealing.then(() => this.seal([payload], 'control', stream))
    return this.sealing
  }

  // --- membership (see Membership) -------------------------------------------

  /** Signs a roster entry about `subject`; whether it counts is up to the roster rules. */
  setRole(subject: Uint8Array, role: Role, options: { label?: string; until?: StreamPosition[]; box?: Uint8Array } = {}): Promise<RosterEntry> {
    return this.membership.setRole(subject, role, options)
  }

  /** A one-time invite key for a handoff of type `transfer`. */
  createInvite(transfer: TransferType): Promise<{ invite: NobleDeviceKey; entry: RosterEntry }> {
    return this.membership.createInvite(transfer)
  }

  /** Cancels an unspent invite this device issued (or any, for the owner): later enrollments with it fail. */
  cancelInvite(invite: Uint8Array): Promise<RosterEntry> {
    return this.membership.cancelInvite(invite)
  }

  /** Enrolls this device with a handoff's invite key. */
  enrollWithInvite(invite: DeviceKey, role: 'writer' | 'reader', label: string): Promise<void> {
    return this.membership.enrollWithInvite(invite, role, label)
  }

  /** Removes a device (owner only) and starts a new key epoch it holds no key for. */
  removeDevice(device: Uint8Array): Promise<SessionKey> {
    return this.membership.removeDevice(device)
  }

  /** Steps this device out of the roster (not the owner: null then); see Membership.leave. */
  leave(): Promise<RosterEntry | null> {
    return this.membership.leave()
  }

  override destroy(): void {
    this.destroyed = true
    this.membership.destroy()
    clearTimeout(this.flushTimer)
    clearTimeout(this.compactTimer)
    clearTimeout(this.inviteTimer)
    this.session.doc.off('update', this.onSessionUpdate)
    this.wire.doc.off('afterTransaction', this.onWireTransaction)
    this.roster.off('change', this.onRosterChange)
    this.session.destroy()
    super.destroy()
  }

  // --- local: batch and seal ------------------------------------------------

  /**
   * True while an epoch newer than every key this device holds has started
   * (a removal): what it sealed now, the removed device could read and every
   * replica would refuse, so local changes wait for the new key.
   */
  private keyIsStale(): boolean {
    const epochs = this.keys.epochs()
    return epochs.length > 0 && this.epochs.staleness({ epoch: Math.max(...epochs), createdAt: this.options.now() }) !== null
  }

  /**
   * Moves this context to a new stream. Changes made under the old client
   * id are queued to seal into the old stream first; seals in flight finish
   * there (each holds its stream), so neither stream gets a gap.
   */
  private useStream(): void {
    if (this.unsealed.length > 0) void this.flush()
    this.own = newOwnStream(this.device, this.newStreamId)
    this.session.doc.clientID = this.own.clientId
  }

  private readonly onSessionUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === ENVELOPE_ORIGIN) return
    if (this.unsealedOn !== this.own) {
      // The stream changed while these waited (no write right or key then):
      // they were made as the old stream's client and go into it, now.
      const [earlier, stream] = [this.unsealed, this.unsealedOn]
      if (earlier.length > 0) {
        const clock = Y.getState(this.session.doc.store, stream.clientId)
        this.sealing = this.sealing.then(() => this.seal(earlier, 'update', stream, clock))
      }
      this.unsealed = []
      this.unsealedBytes = 0
      this.unsealedOn = this.own
    }
    this.unsealed.push(update)
    this.unsealedBytes += update.length
    if (this.unsealedBytes >= this.options.maxBatchBytes) void this.flush()
    else this.scheduleFlush()
    if (this.unsealed.length === 1) this.emit('status', [this.status])
  }

  private scheduleFlush(): void {
    if (this.flushTimer || this.flushQueued) return
    const wait = this.lastFlushAt + this.options.batchWindowMs - this.options.now()
    if (wait > 0) {
      this.flushTimer = setTimeout(() => void this.flush(), wait)
      return
    }
    // A microtask, so changes made in the same tick share the envelope.
    this.flushQueued = true
    queueMicrotask(() => {
      this.flushQueued = false
      void this.flush()
    })
  }

  /** Seals into `stream`; seals run one at a time (see `sealing`), so each starts where the last ended. */
  private async seal(updates: Uint8Array[], kind: 'update' | 'control', stream: OwnStream, clock = 0): Promise<void> {
    if (this.destroyed) return
    const plaintext = updates.length === 1 ? updates[0]! : Y.mergeUpdates(updates)
    try {
      const envelope = await sealEnvelope({
        header: {
          kind,
          sessionId: this.sessionId,
          stream: stream.id,
          seq: stream.seq + 1,
          prev: stream.lastHash,
          createdAt: this.options.now(),
          clientIds: kind === 'update' ? [stream.clientId] : [],
          covers: [],
        },
        plaintext,
        key: this.keys.current,
        signer: this.device,
      })
      stream.seq = envelope.header.seq
      // Out to the transports first; the chain hash is for the next seal.
      this.wire.append([envelope.bytes], this.origin)
      stream.lastHash = envelope.hash
      this.ledger.advance(envelope.header, envelope.hash)
      const key = StreamLedger.key(envelope.header)
      this.clocks.mark(key, envelope.header.seq, clock)
      if (kind === 'update') this.deletions.record(key, envelope.header.seq, updateDeletions(plaintext))
      this.stats.sealed++
      this.tracker.sealed(this.wire.doc)
      this.maybeCompact()
    } catch (e) {
      // Keep the changes: nothing local is dropped because sealing failed.
      // (Into the queue only if it still belongs to their stream.)
      if (kind === 'update' && (this.unsealed.length === 0 || this.unsealedOn === stream)) {
        this.unsealedOn = stream
        this.unsealed.unshift(plaintext)
      }
      this.report(toKaiError(e), false)
    }
  }

  private readonly onRosterChange = (): void => {
    this.session.readOnly = !this.canWrite
    if (this.unsealed.length > 0) void this.flush()
    if (this.intake.heldCount > 0 || this.grantInbox.length > 0) void this.drain(true)
    if (!this.opened) return
    this.membership.noteCompletedHandoffs()
    this.membership.deliverKeys().catch((e: unknown) => this.report(toKaiError(e), false))
    void this.membership.stepDownIfTakenOver().catch((e) => this.report(toKaiError(e), false))
    this.retireExpiredInvites()
    this.answerSnapshotsOfFormerWriters()
    this.emit('status', [this.status])
  }

  /** Devices whose snapshots this replica has answered (see answerSnapshotsOfFormerWriters), by device id. */
  private readonly answeredFormerWriters = new Set<string>()

  /**
   * A snapshot in the log whose signer may no longer write (removed, or a
   * reader now), which this replica took while it still could: a replica
   * that hears of the roster change first refuses it, yet the deletions it
   * made in the log stand, so what it replaced would be gone there, and
   * for every device that joins later. Its date cannot decide (it is the
   * signer's word: a removed device could backdate one), so a writer that
   * holds the content answers as it answers an over-claim, sealing a
   * snapshot of its whole state that covers what it applied. Once per such
   * device and run: a removal is rare, and costs each writer one snapshot
   * if the removed device has one in the log.
   */
  private answerSnapshotsOfFormerWriters(): void {
    if (!this.canWrite) return
    let owed = false
    for (const bytes of this.wire.envelopes()) {
      let h: EnvelopeHeader
      try {
        h = decodeEnvelope(bytes).header
      } catch {
        continue
      }
      if (h.kind !== 'snapshot' || h.sessionId !== this.sessionId) continue
      const role = this.roster.roleOf(h.device)
      const id = deviceIdOf(h.device)
      if (role === 'owner' || role === 'writer' || this.answeredFormerWriters.has(id)) continue
      this.answeredFormerWriters.add(id)
      owed = true
    }
    if (owed) this.republish()
  }

  /** Retires this device's expired invites now and sets a timer for the next one to expire. */
  private retireExpiredInvites(): void {
    if (this.destroyed) return
    clearTimeout(this.inviteTimer)
    const { retiring, next } = this.membership.retireExpiredInvites()
    this.retiring = retiring.catch((e) => this.report(toKaiError(e), false))
    // Should it fire before `now` reaches the expiry, this finds nothing due and sets another.
    if (next === undefined) return
    this.inviteTimer = setTimeout(() => this.retireExpiredInvites(), Math.max(0, next - this.options.now()))
    // Minutes long: it must not keep a Node process (a CLI command) alive; the next open retires it.
    ;(this.inviteTimer as { unref?: () => void }).unref?.()
  }

  // --- remote: see Intake ---------------------------------------------------

  private readonly onWireTransaction = (tr: Y.Transaction): void => {
    if (tr.origin === this.origin) return
    if (tr.deleteSet.clients.size > 0) {
      const { deleted, own } = this.deletedFromLog(tr)
      if (own.length > 0) {
        this.dropped.note(own, deleted, this.wire.envelopes())
        this.membership.noteOwnDropped(own.map((env) => env.header))
      }
    }
    const inserted = this.wire.insertedIn(tr)
    if (inserted.envelopes.length + inserted.rosterEntries.length + inserted.keyGrants.length === 0) return
    this.inbox.push(...inserted.envelopes)
    this.rosterInbox.push(...inserted.rosterEntries)
    this.grantInbox.push(...inserted.keyGrants)
    void this.drain()
  }

  /**
   * The envelopes of this session another replica's transaction deleted
   * from the log, and this device's among them, which may be owed a
   * re-seal (see Membership.noteOwnDropped) and kept meanwhile
   * (DroppedOwn). Runs only for transactions that delete, before Yjs
   * collects the content. The content is a view into the update that
   * brought it: only this device's are copied, since only they are kept;
   * the others are read at once (DroppedOwn.note), and a compaction by
   * another writer deletes many.
   */
  private deletedFromLog(tr: Y.Transaction): { deleted: Envelope[]; own: Envelope[] } {
    const deleted: Envelope[] = []
    const own: Envelope[] = []
    Y.iterateDeletedStructs(tr, tr.deleteSet, (item) => {
      if (!(item instanceof Y.Item) || item.parent !== this.wire.log || !(item.content instanceof Y.ContentBinary)) return
      try {
        let env = decodeEnvelope(item.content.content)
        if (env.header.sessionId !== this.sessionId) return
        if (equalBytes(env.header.device, this.device.publicKey)) own.push((env = decodeEnvelope(env.bytes.slice())))
        deleted.push(env)
      } catch {
        // not an envelope
      }
    })
    return { deleted, own }
  }

  /** Processes arrivals one batch at a time; `retry` also re-examines held envelopes and grants. */
  private drain(retry = false): Promise<void> {
    this.retryHeld ||= retry
    this.draining ??= (async () => {
      while (!this.destroyed && (this.inbox.length || this.rosterInbox.length || this.grantInbox.length || this.retryHeld)) {
        if (this.rosterInbox.length) {
          for (const e of await this.roster.add(this.rosterInbox.splice(0))) this.report(e, false)
        }
        const grants = this.grantInbox.splice(0)
        if (grants.length || this.retryHeld) {
          for (const e of await this.membership.receiveGrants(grants)) this.report(e, false)
        }
        const batch: Envelope[] = []
        for (const bytes of this.inbox.splice(0)) {
          try {
            batch.push(decodeEnvelope(bytes))
          } catch (e) {
            this.report(toKaiError(e), false)
          }
        }
        if (this.retryHeld) {
          batch.push(...this.intake.takeHeld())
          this.retryHeld = false
        }
        const { progressed, controls, overClaims } = await this.intake.round(batch)
        this.afterApply(controls)
        if (overClaims > 0) this.republish()
        // Each round that applies something may unblock held envelopes.
        if (progressed) {
          this.retryHeld = this.intake.heldCount > 0
          this.emit('status', [this.status])
          this.maybeCompact()
        }
      }
    })().finally(() => {
      this.draining = null
    })
    return this.draining
  }

  /**
   * While a doc has an 'update' listener, Yjs encodes every transaction's
   * update after it: for a snapshot, the whole session again. Remote
   * transactions are never sealed, so the listener is off during them.
   */
  private applyRemotely(fn: () => void): void {
    const doc = this.session.doc
    doc.off('update', this.onSessionUpdate)
    // An observer that writes in reaction (an agent answering what arrived)
    // makes a transaction of its own while this one is cleaned up, before
    // transact returns: the listener is back for that one, or its update is
    // never sealed, and stays in this session doc only, with nothing pending.
    const listen = () => {
      doc.off('beforeTransaction', listen)
      doc.on('update', this.onSessionUpdate)
    }
    try {
      doc.transact(() => {
        doc.on('beforeTransaction', listen)
        fn()
      }, ENVELOPE_ORIGIN)
    } finally {
      listen()
    }
  }

  private afterApply(controls: ControlMessage[]): void {
    // Yjs picks a random client id when a remote update writes as ours;
    // our envelopes must carry a derived one, so start a new stream.
    if (this.session.doc.clientID !== this.own.clientId) this.useStream()
    for (const c of controls) {
      this.emit('control', [c])
      const moved = parseControl(c.payload)
      if (moved) this.emit('moved', [moved, c.device])
    }
  }

  /**
   * Once everything stored is loaded, an envelope this device signed that is
   * still held for a gap in its stream can only be the mark of a bug (a
   * context seals its streams in order, and stores keep that order). It is
   * said loudly, and its content applied here, to be re-sealed in a snapshot.
   */
  private async repairOwnGaps(): Promise<number> {
    const own = this.intake.takeHeldWhere((env, code) => code === 'gap' && equalBytes(env.header.device, this.device.publicKey))
    if (own.length === 0) return 0
    const applied = await this.intake.applyOwn(own)
    this.report(new KaiError('own_gap', `${own.length} envelopes this device signed were held for a gap in their own stream; ${applied} applied here and re-sealed in a snapshot`), false)
    return applied
  }

  // --- compaction ------------------------------------------------------------

  /** An over-claim is still to be answered: it arrived during open(), or while this device could not seal (a stale key). */
  private republishPending = false

  /**
   * A snapshot claimed content it does not hold (Intake reported
   * `over_claim`): the relay may have let it delete that content, so this
   * replica seals its whole state in a snapshot of its own, covering what
   * it applied, which any later joiner gets. It holds everything the lie's
   * covers name that this replica knows, so it is never judged an
   * over-claim itself by what it knew; each answer only grows what the
   * next snapshot holds, so honest replicas do not answer each other for
   * ever. A reader cannot seal: it only reports.
   */
  private republish(): void {
    if (!this.answerOverClaims) return
    this.republishPending = true
    if (!this.opened || !this.canWrite) return
    void this.compact().then((replaced) => {
      // null: nothing sealed (a key epoch this device holds no key of yet); tried again when the key arrives.
      if (replaced !== null) this.republishPending = false
    })
  }

  private maybeCompact(): void {
    const threshold = this.options.compactAfter
    if (threshold === null || this.compactTimer || this.compactQueued || this.wire.log.length < threshold || !this.canWrite) return
    if (this.options.compactJitterMs === 0) {
      // No delay asked for: a microtask, not a timer, so whenIdle and
      // whenQuiet find it under way. A timer fires whenever the platform's
      // crypto lets the loop turn, which a seeded replay cannot fix.
      this.compactQueued = true
      queueMicrotask(() => {
        this.compactQueued = false
        if (!this.destroyed) void this.compact()
      })
      return
    }
    // A random delay, so replicas that cross the threshold together rarely
    // all compact at once (which is safe, only wasteful).
    this.compactTimer = setTimeout(() => {
      this.compactTimer = undefined
      if (!this.destroyed) void this.compact()
    }, Math.random() * this.options.compactJitterMs)
  }

  private async compactNow(): Promise<number | null> {
    if (!this.canWrite || this.destroyed || this.keyIsStale()) return null
    await this.flush()
    await this.drain()
    await this.dropped.ready()
    // State and covers are taken together, synchronously: the snapshot then
    // holds at least every envelope it claims to cover, and what the
    // dropped envelopes this device keeps carried, if the doc holds it.
    const state = Y.encodeStateAsUpdate(this.session.doc)
    const covers = this.ledger.cursors()
    const kept = this.dropped.heldIn(this.session.doc)
    const snapshot = await sealEnvelope({
      header: {
        kind: 'snapshot',
        sessionId: this.sessionId,
        stream: this.own.id,
        seq: 0,
        prev: ZERO_HASH,
        createdAt: this.options.now(),
        clientIds: [...this.session.doc.store.clients.keys()],
        covers,
      },
      plaintext: state,
      key: this.keys.current,
      signer: this.device,
    })
    if (this.destroyed) return null
    this.onCompactionStep?.('sealed')
    const deleted = this.wire.replaceCovered(snapshot.bytes, planCompaction(this.sessionId, snapshot, this.wire.envelopes()), this.origin)
    // Forgotten once the device's stores hold the snapshot; should the log lose it, it is kept in turn (see DroppedOwn).
    this.dropped.releaseAt(kept, Y.getState(this.wire.doc.store, this.wire.doc.clientID))
    this.dropped.stored((clock) => this.tracker.storedLocally(clock))
    this.onCompactionStep?.('applied')
    this.tracker.sealed(this.wire.doc)
    this.emit('status', [this.status])
    return deleted
  }

  private report(reason: KaiError, held: boolean, env?: Envelope): void {
    this.stats.rejected.set(reason.code, (this.stats.rejected.get(reason.code) ?? 0) + 1)
    if (!held) this.refused[reason.code] = (this.refused[reason.code] ?? 0) + 1
    const rejection: Rejection = { code: reason.code, message: reason.message, held }
    if (env) {
      rejection.device = toBase64Url(env.header.device)
      rejection.stream = toBase64Url(env.header.stream)
      rejection.seq = env.header.seq
    }
    this.emit('rejected', [rejection])
    this.emit('status', [this.status])
  }
}

