import * as Y from 'yjs'
import { ObservableV2 } from 'lib0/observable'
import * as decoding from 'lib0/decoding'
import { KaiError, SessionDoc, toKaiError, type ErrorCode, type Mode } from '@kai-sync/model'
import {
  ZERO_HASH,
  decodeEnvelope,
  defaultVerifier,
  deriveClientId,
  newStreamId,
  openEnvelope,
  sealEnvelope,
  toBase64Url,
  verifyEnvelope,
  type DeviceKey,
  type Envelope,
  type Role,
  type SessionKeyring,
  type SignatureVerifier,
  type StreamPosition,
  type RosterEntry,
  signRosterEntry,
} from '@kai-sync/crypto'
import { WireDoc } from './wire-doc'
import { Roster } from './roster'
import { StreamLedger } from './stream-ledger'
import { ENVELOPE_ORIGIN, type EngineOrigin } from './origins'
import { planCompaction } from './compaction'
import { SyncStatusTracker, type StoreKind, type SyncStatus } from './sync-status'

export interface SyncEngineOptions {
  sessionId: string
  wire: WireDoc
  device: DeviceKey
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
}

/** An envelope this replica did not apply, and why. */
export interface Rejection {
  code: ErrorCode
  message: string
  /** True while it is kept to retry when what it waits for arrives. */
  held: boolean
  device?: string
  stream?: string
  seq?: number
}

export interface ControlMessage {
  device: Uint8Array
  payload: Uint8Array
}

export interface SyncEngineEvents {
  status: (status: SyncStatus) => void
  rejected: (rejection: Rejection) => void
  control: (message: ControlMessage) => void
}

/** A device's id in the session doc: its public key, base64url. */
export function deviceIdOf(device: DeviceKey | Uint8Array): string {
  return toBase64Url(device instanceof Uint8Array ? device : device.publicKey)
}

interface Opened {
  env: Envelope
  plaintext: Uint8Array
}

/**
 * Binds a session doc to a wire doc. Local session updates are batched,
 * sealed into the wire doc's log; envelopes other replicas put there are
 * verified, decrypted and applied, each stream in order, all or nothing.
 */
export class SyncEngine extends ObservableV2<SyncEngineEvents> {
  readonly session: SessionDoc
  readonly roster: Roster
  readonly wire: WireDoc
  readonly sessionId: string
  readonly device: DeviceKey
  readonly keys: SessionKeyring
  private readonly ledger = new StreamLedger()
  readonly verifier: SignatureVerifier
  private readonly origin: EngineOrigin = Object.freeze({ source: 'engine' as const, engine: this })
  private readonly options: Required<Pick<SyncEngineOptions, 'batchWindowMs' | 'maxBatchBytes' | 'compactAfter' | 'compactJitterMs' | 'maxHeld' | 'now'>>
  private readonly tracker: SyncStatusTracker

  private stream = newStreamId()
  private clientId = 0
  private seq = 0
  private lastHash: Uint8Array = ZERO_HASH
  private unsealed: Uint8Array[] = []
  private unsealedBytes = 0
  private flushTimer: ReturnType<typeof setTimeout> | undefined
  private flushQueued = false
  private lastFlushAt = -Infinity
  private compactTimer: ReturnType<typeof setTimeout> | undefined
  private sealing: Promise<void> = Promise.resolve()
  private compacting: Promise<number | null> | null = null

  private inbox: Uint8Array[] = []
  private rosterInbox: Uint8Array[] = []
  private readonly held = new Map<string, Envelope>()
  private draining: Promise<void> | null = null
  private retryHeld = false
  /** Held envelopes already reported, so a retry that holds again stays quiet. */
  private readonly heldReported = new Set<string>()
  private destroyed = false
  readonly stats = { sealed: 0, applied: 0, snapshots: 0, rejected: new Map<ErrorCode, number>() }

  private constructor(options: SyncEngineOptions, verifier: SignatureVerifier) {
    super()
    this.sessionId = options.sessionId
    this.wire = options.wire
    this.device = options.device
    this.keys = options.keys
    this.verifier = verifier
    this.options = {
      batchWindowMs: options.batchWindowMs ?? 60,
      maxBatchBytes: options.maxBatchBytes ?? 256 * 1024,
      compactAfter: options.compactAfter === undefined ? 500 : options.compactAfter,
      compactJitterMs: options.compactJitterMs ?? 1000,
      maxHeld: options.maxHeld ?? 10_000,
      now: options.now ?? Date.now,
    }
    this.session = new SessionDoc({ device: deviceIdOf(options.device), mode: options.mode, now: this.options.now })
    this.useStream(this.stream)
    this.roster = new Roster(options.sessionId, verifier)
    this.tracker = new SyncStatusTracker(() => this.emit('status', [this.status]))
    this.roster.on('change', this.onRosterChange)
    this.session.doc.on('update', this.onSessionUpdate)
    this.wire.doc.on('afterTransaction', this.onWireTransaction)
    // Everything the wire doc already holds is processed like an arrival.
    this.rosterInbox.push(...this.wire.rosterEntries())
    this.inbox.push(...this.wire.envelopes())
  }

  /** Opens a session: loads what the wire doc holds, then follows it live. */
  static async open(options: SyncEngineOptions): Promise<SyncEngine> {
    const engine = new SyncEngine(options, options.verifier ?? (await defaultVerifier()))
    await engine.drain()
    // Our derived client id must be nobody else's in the doc.
    while (engine.session.doc.store.clients.has(engine.clientId)) engine.useStream(newStreamId())
    engine.onRosterChange()
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
    return this.tracker.status(this.unsealed.length, this.held.size, this.role)
  }

  /** The stream this context signs: its id and last sequence number. */
  get position(): { stream: Uint8Array; seq: number } {
    return { stream: this.stream, seq: this.seq }
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
    if (this.unsealed.length === 0 || !this.canWrite) return this.sealing
    this.lastFlushAt = this.options.now()
    const updates = this.unsealed
    this.unsealed = []
    this.unsealedBytes = 0
    this.sealing = this.sealing.then(() => this.seal(updates))
    return this.sealing
  }

  /** Resolves once every arrival so far has been processed and every local change sealed. */
  async whenIdle(): Promise<void> {
    while (this.draining || this.inbox.length || this.rosterInbox.length) await this.drain()
    await this.flush()
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

  /**
   * Signs a roster entry about `subject` (enroll, promote, step down,
   * remove) and adds it to the wire doc. Whether it takes effect is up to
   * the roster rules, which every replica and the relay apply alike.
   */
  async setRole(subject: Uint8Array, role: Role, options: { label?: string; until?: StreamPosition[] } = {}): Promise<RosterEntry> {
    const entry = await signRosterEntry(
      {
        sessionId: this.sessionId,
        subject,
        role,
        version: this.roster.nextVersion(subject),
        // After every entry this device has seen, so the fold places it
        // after the entry that gave this device its authority.
        issuedAt: Math.max(this.options.now(), this.roster.latestIssuedAt() + 1),
        label: options.label ?? '',
        until: options.until ?? [],
      },
      this.device,
    )
    this.wire.addRosterEntries([entry.bytes], this.origin)
    this.rosterInbox.push(entry.bytes)
    await this.drain()
    return entry
  }

  /** Seals a control message (a handoff step-down, say) into this context's stream. */
  async sendControl(payload: Uint8Array): Promise<void> {
    await this.flush()
    this.sealing = this.sealing.then(() => this.seal([payload], 'control'))
    return this.sealing
  }

  override destroy(): void {
    this.destroyed = true
    clearTimeout(this.flushTimer)
    clearTimeout(this.compactTimer)
    this.session.doc.off('update', this.onSessionUpdate)
    this.wire.doc.off('afterTransaction', this.onWireTransaction)
    this.roster.off('change', this.onRosterChange)
    this.session.destroy()
    super.destroy()
  }

  // --- local: batch and seal ------------------------------------------------

  private useStream(stream: Uint8Array): void {
    this.stream = stream
    this.seq = 0
    this.lastHash = ZERO_HASH
    this.clientId = deriveClientId(this.device.publicKey, stream)
    this.session.doc.clientID = this.clientId
  }

  private readonly onSessionUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === ENVELOPE_ORIGIN) return
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

  private async seal(updates: Uint8Array[], kind: 'update' | 'control' = 'update'): Promise<void> {
    if (this.destroyed) return
    const plaintext = updates.length === 1 ? updates[0]! : Y.mergeUpdates(updates)
    try {
      const envelope = await sealEnvelope({
        header: {
          kind,
          sessionId: this.sessionId,
          stream: this.stream,
          seq: this.seq + 1,
          prev: this.lastHash,
          createdAt: this.options.now(),
          clientIds: kind === 'update' ? [this.clientId] : [],
          covers: [],
        },
        plaintext,
        key: this.keys.current,
        signer: this.device,
      })
      this.seq = envelope.header.seq
      this.lastHash = envelope.hash
      this.ledger.advance(envelope.header, envelope.hash)
      this.wire.append([envelope.bytes], this.origin)
      this.stats.sealed++
      this.tracker.sealed(this.wire.doc)
      this.maybeCompact()
    } catch (e) {
      // Keep the changes: nothing local is dropped because sealing failed.
      if (kind === 'update') this.unsealed.unshift(plaintext)
      this.report(toKaiError(e), false)
    }
  }

  private readonly onRosterChange = (): void => {
    this.session.readOnly = !this.canWrite
    if (this.unsealed.length > 0) void this.flush()
    if (this.held.size > 0) void this.drain(true)
    this.emit('status', [this.status])
  }

  // --- remote: verify, decrypt, apply --------------------------------------

  private readonly onWireTransaction = (tr: Y.Transaction): void => {
    if (tr.origin === this.origin) return
    const inserted = this.wire.insertedIn(tr)
    if (inserted.envelopes.length === 0 && inserted.rosterEntries.length === 0) return
    this.inbox.push(...inserted.envelopes)
    this.rosterInbox.push(...inserted.rosterEntries)
    void this.drain()
  }

  /** Processes arrivals one batch at a time; `retry` also re-examines held envelopes. */
  private drain(retry = false): Promise<void> {
    if (this.draining) {
      if (retry) this.retryHeld = true
      return this.draining
    }
    this.retryHeld ||= retry
    this.draining = (async () => {
      while (!this.destroyed && (this.inbox.length || this.rosterInbox.length || this.retryHeld)) {
        if (this.rosterInbox.length) {
          for (const e of await this.roster.add(this.rosterInbox.splice(0))) this.report(e, false)
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
          batch.push(...this.held.values())
          this.held.clear()
          this.retryHeld = false
        }
        // Each round that applies something may unblock held envelopes.
        if (await this.round(batch)) this.retryHeld = this.held.size > 0
      }
    })().finally(() => {
      this.draining = null
    })
    return this.draining
  }

  private async round(batch: Envelope[]): Promise<boolean> {
    const ready = this.admit(batch)
    if (ready.length === 0) return false
    const opened = (await Promise.all(ready.map((env) => this.open(env)))).filter((o): o is Opened => o !== null)
    return this.apply(opened)
  }

  /** The envelopes worth verifying now; holds, drops or rejects the rest. */
  private admit(batch: Envelope[]): Envelope[] {
    const ready: Envelope[] = []
    const tips = new Map<string, { seq: number; hash: Uint8Array }>()
    batch.sort((a, b) => a.header.seq - b.header.seq)
    for (const env of batch) {
      const h = env.header
      if (h.sessionId !== this.sessionId) {
        this.reject(env, new KaiError('wrong_session', `envelope for ${h.sessionId.slice(0, 40)}`))
        continue
      }
      const member = this.roster.member(h.device)
      if (!member) {
        this.hold(env, new KaiError('unknown_signer', 'held until the roster entry of its device arrives'))
        continue
      }
      const writer = member.role === 'owner' || member.role === 'writer'
      if (h.kind === 'snapshot' ? !writer : !this.roster.mayWrite(h.device, h.stream, h.seq)) {
        this.reject(env, new KaiError('unauthorized_signer', `a ${member.role} may not write this`))
        continue
      }
      if (!this.keys.has(h.epoch)) {
        this.hold(env, new KaiError('wrong_epoch', `held until the key of epoch ${h.epoch} arrives`))
        continue
      }
      if (h.kind === 'snapshot') {
        if (!this.ledger.dominates(h.covers)) ready.push(env)
        continue
      }
      const key = StreamLedger.key(h.stream)
      const position = this.ledger.position(h, env.hash, tips.get(key))
      if (position === 'next') {
        tips.set(key, { seq: h.seq, hash: env.hash })
        ready.push(env)
      } else if (position === 'gap') {
        this.hold(env, new KaiError('gap', `seq ${h.seq} held until seq ${this.ledger.seqOf(h.stream) + 1} arrives`))
      } else if (position !== 'covered') {
        this.reject(env, new KaiError(position, `seq ${h.seq} of its stream`))
      }
    }
    return ready
  }

  private async open(env: Envelope): Promise<Opened | null> {
    try {
      await verifyEnvelope(env, this.verifier)
      const plaintext = await openEnvelope(env, this.keys)
      if (env.header.kind !== 'control') checkClientIds(env, plaintext)
      return { env, plaintext }
    } catch (e) {
      this.reject(env, toKaiError(e))
      return null
    }
  }

  /** Applies snapshots, then each stream in order, in one session transaction. */
  private apply(opened: Opened[]): boolean {
    let progressed = false
    const controls: ControlMessage[] = []
    opened.sort((a, b) => Number(b.env.header.kind === 'snapshot') - Number(a.env.header.kind === 'snapshot') || a.env.header.seq - b.env.header.seq)
    // While a doc has an 'update' listener, Yjs encodes every transaction's
    // update after it: for a snapshot, the whole session again. Remote
    // transactions are never sealed, so the listener is off during them.
    this.session.doc.off('update', this.onSessionUpdate)
    try {
      this.session.doc.transact(() => {
        progressed = this.applyOpened(opened, controls)
      }, ENVELOPE_ORIGIN)
    } finally {
      this.session.doc.on('update', this.onSessionUpdate)
    }
    // Yjs picks a random client id when a remote update writes as ours;
    // our envelopes must carry a derived one, so start a new stream.
    if (this.session.doc.clientID !== this.clientId) this.useStream(newStreamId())
    for (const c of controls) this.emit('control', [c])
    if (progressed) {
      this.emit('status', [this.status])
      this.maybeCompact()
    }
    return progressed
  }

  /** Inside one session transaction: snapshots first, then each stream in order. */
  private applyOpened(opened: Opened[], controls: ControlMessage[]): boolean {
    let progressed = false
    for (const { env, plaintext } of opened) {
      const h = env.header
      if (h.kind === 'snapshot') {
        if (this.ledger.dominates(h.covers) || !this.applyUpdate(env, plaintext)) continue
        this.ledger.cover(h.covers)
        this.stats.snapshots++
        progressed = true
        continue
      }
      const position = this.ledger.position(h, env.hash)
      if (position === 'gap') {
        this.hold(env, new KaiError('gap', `seq ${h.seq}: an earlier envelope of its stream failed`))
        continue
      }
      if (position !== 'next') continue // a snapshot in this batch brought it
      if (h.kind === 'control') controls.push({ device: h.device, payload: plaintext })
      else if (!this.applyUpdate(env, plaintext)) continue
      this.settled(env)
      this.ledger.advance(h, env.hash)
      this.stats.applied++
      progressed = true
    }
    return progressed
  }

  /**
   * Applies one decrypted update. A writer can sign bytes Yjs cannot read;
   * Yjs then throws, possibly after integrating part of them (the same part
   * on every replica, since they all apply the same bytes). The envelope is
   * refused and the rest of the batch still applies.
   */
  private applyUpdate(env: Envelope, plaintext: Uint8Array): boolean {
    try {
      Y.applyUpdate(this.session.doc, plaintext)
      return true
    } catch (cause) {
      this.reject(env, new KaiError('malformed', 'the decrypted update is not a Yjs update', { cause }))
      return false
    }
  }

  // --- compaction ------------------------------------------------------------

  private maybeCompact(): void {
    const threshold = this.options.compactAfter
    if (threshold === null || this.compactTimer || this.wire.log.length < threshold || !this.canWrite) return
    // A random delay, so replicas that cross the threshold together rarely
    // all compact at once (which is safe, only wasteful).
    this.compactTimer = setTimeout(() => {
      this.compactTimer = undefined
      if (!this.destroyed) void this.compact()
    }, Math.random() * this.options.compactJitterMs)
  }

  private async compactNow(): Promise<number | null> {
    if (!this.canWrite || this.destroyed) return null
    await this.flush()
    await this.drain()
    // State and covers are taken together, synchronously: the snapshot then
    // holds at least every envelope it claims to cover.
    const state = Y.encodeStateAsUpdate(this.session.doc)
    const covers = this.ledger.cursors()
    const snapshot = await sealEnvelope({
      header: {
        kind: 'snapshot',
        sessionId: this.sessionId,
        stream: this.stream,
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
    const deleted = this.wire.replaceCovered(snapshot.bytes, planCompaction(this.sessionId, covers), this.origin)
    this.tracker.sealed(this.wire.doc)
    this.emit('status', [this.status])
    return deleted
  }

  // --- rejections ------------------------------------------------------------

  private hold(env: Envelope, reason: KaiError): void {
    const key = toBase64Url(env.hash)
    if (this.held.has(key)) return
    if (this.held.size >= this.options.maxHeld) {
      this.reject(env, new KaiError(reason.code, `${reason.message}; too many envelopes held, dropped`))
      return
    }
    this.held.set(key, env)
    if (this.heldReported.has(key)) return
    this.heldReported.add(key)
    this.report(reason, true, env)
  }

  private reject(env: Envelope, reason: KaiError): void {
    this.settled(env)
    this.report(reason, false, env)
  }

  private settled(env: Envelope): void {
    if (this.heldReported.size > 0) this.heldReported.delete(toBase64Url(env.hash))
  }

  private report(reason: KaiError, held: boolean, env?: Envelope): void {
    this.stats.rejected.set(reason.code, (this.stats.rejected.get(reason.code) ?? 0) + 1)
    const rejection: Rejection = { code: reason.code, message: reason.message, held }
    if (env) {
      rejection.device = toBase64Url(env.header.device)
      rejection.stream = toBase64Url(env.header.stream)
      rejection.seq = env.header.seq
    }
    this.emit('rejected', [rejection])
  }
}

/**
 * An update may only write as the Yjs client its signer's stream owns. A
 * stream's update holds the structs of one client at most, and Yjs's
 * update format names its clients first, so reading the client count and
 * the first client id decides it without parsing the structs.
 */
function checkClientIds(env: Envelope, plaintext: Uint8Array): void {
  const h = env.header
  if (h.kind === 'snapshot') return // a snapshot carries every client's state by design
  const owned = deriveClientId(h.device, h.stream)
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
