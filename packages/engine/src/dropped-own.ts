import type * as Y from 'yjs'
import { KaiError } from '@kai-sync/model'
import { decodeEnvelope, equalBytes, toBase64Url, type Envelope } from '@kai-sync/crypto'
import { CoverChains } from './cover-chains'
import { docContainsUpdate } from './contains-update'

/**
 * Where a device keeps, on its own disk and nowhere else, the envelopes it
 * sealed that a session's log lost while no snapshot there held them (see
 * DroppedOwn). One store serves all the device's sessions. Ciphertext, as
 * sealed; `key` names one envelope of the session (its hash).
 */
export interface DroppedOwnStore {
  /** Everything kept for the session, read at open. */
  load(sessionId: string): Promise<Uint8Array[]>
  /** Resolves once the envelope is on disk. */
  keep(sessionId: string, key: string, envelope: Uint8Array): Promise<void>
  /** Resolves once it is gone from disk; an unknown key is a no-op. */
  forget(sessionId: string, key: string): Promise<void>
}

/** What DroppedOwn needs from its engine. */
export interface DroppedOwnHost {
  readonly sessionId: string
  /** This device's public key. */
  readonly device: Uint8Array
  readonly store: DroppedOwnStore | undefined
  /** Decrypts an envelope of this device's; null if it holds no key for it. */
  open(env: Envelope): Promise<Uint8Array | null>
  /** A store that failed, or held what is not an envelope. */
  failed(e: unknown): void
}

interface Kept {
  env: Envelope
  /** Null until decrypted (or if this device holds no key for it). */
  plaintext: Uint8Array | null
}

/**
 * This device's update and snapshot envelopes that another replica deleted
 * from the log while no snapshot left there holds them. The kai relay does that to an
 * envelope it finds sealed under an epoch that was over (StaleDrop), a
 * snapshot too, and this device may learn of that epoch, and get its key,
 * only later: until it re-seals under that key, the content lives only in
 * this context's session doc, which is memory, rebuilt from the log at
 * open. So each such envelope is kept in the device's store until a
 * snapshot this device sealed holds its content (should that snapshot be
 * dropped in turn, it is kept the same way); at open the kept envelopes
 * are taken in as if the log still held them, and re-sealed once the key
 * is known (see SyncEngine.open and Membership.noteOwnDropped).
 *
 * What a compaction deleted is not kept: the snapshot that deleted it holds
 * it, by the rule every replica and the relay compact by (CoverChains).
 */
export class DroppedOwn {
  /** By key (the envelope's hash). */
  private readonly kept = new Map<string, Kept>()
  private writes: Promise<void> = Promise.resolve()
  private opening: Promise<void> = Promise.resolve()
  /** Releases waiting for the wire doc to be stored, oldest first (see releaseAt). */
  private readonly releases: Array<{ keys: string[]; clock: number }> = []

  constructor(private readonly host: DroppedOwnHost) {}

  /**
   * Reads the store: the envelopes still to take in, given the log as it
   * is now. One the log holds again, or that a snapshot in it holds (it
   * was re-sealed before this device closed), is forgotten.
   */
  async load(log: Uint8Array[]): Promise<Envelope[]> {
    const { store } = this.host
    if (!store) return []
    let stored: Uint8Array[]
    try {
      stored = await store.load(this.host.sessionId)
    } catch (e) {
      this.host.failed(e)
      return []
    }
    const found: Envelope[] = []
    let unreadable = 0
    for (const bytes of stored) {
      try {
        const env = decodeEnvelope(bytes)
        if (this.isOwn(env)) found.push(env)
        else unreadable++
      } catch {
        unreadable++
      }
    }
    if (unreadable > 0) this.host.failed(new KaiError('malformed', `${unreadable} entries of this device's store of dropped envelopes are not its envelopes of this session; ignored`))
    const inLog = decodeLog(log, this.host.sessionId)
    const there = new Set(inLog.map((env) => toBase64Url(env.hash)))
    const held = new Set(heldBy(inLog, [], found))
    const out: Envelope[] = []
    for (const env of found) {
      const key = toBase64Url(env.hash)
      if (there.has(key) || held.has(env)) this.write(() => store.forget(this.host.sessionId, key))
      else if (!this.kept.has(key)) {
        this.track(key, env)
        out.push(env)
      }
    }
    return out
  }

  /**
   * A transaction of another replica deleted `deleted` from the log (which
   * holds `log` after it); `own` are this device's among them. Keeps those
   * no snapshot left in the log holds.
   */
  note(own: Envelope[], deleted: Envelope[], log: Uint8Array[]): void {
    const { store } = this.host
    if (!store) return
    const fresh = own.filter((env) => this.isOwn(env) && !this.kept.has(toBase64Url(env.hash)))
    if (fresh.length === 0) return
    const held = new Set(heldBy(decodeLog(log, this.host.sessionId), deleted, fresh))
    for (const env of fresh) {
      if (held.has(env)) continue
      const key = toBase64Url(env.hash)
      this.track(key, env)
      this.write(() => store.keep(this.host.sessionId, key, env.bytes))
    }
  }

  /** Resolves once every kept envelope known so far is decrypted (see holdsNow). */
  ready(): Promise<void> {
    return this.opening
  }

  /** The kept envelopes whose content `doc` holds now: a snapshot of it holds them (see releaseAt). */
  heldIn(doc: Y.Doc): string[] {
    const out: string[] = []
    for (const [key, { plaintext }] of this.kept) if (plaintext && docContainsUpdate(doc, plaintext)) out.push(key)
    return out
  }

  /**
   * Forgets these (see heldIn) once the device's stores hold the wire doc
   * up to `clock` (see stored): a snapshot this device sealed, appended
   * there, holds them. Forgotten before that, a kill could leave them
   * nowhere on disk.
   */
  releaseAt(keys: string[], clock: number): void {
    if (keys.length > 0) this.releases.push({ keys, clock })
  }

  /** The device's stores acknowledged more of the wire doc: forgets what the snapshots they now hold hold. */
  stored(holds: (clock: number) => boolean): void {
    const { store } = this.host
    while (this.releases.length > 0 && holds(this.releases[0]!.clock)) {
      for (const key of this.releases.shift()!.keys) if (this.kept.delete(key) && store) this.write(() => store.forget(this.host.sessionId, key))
    }
  }

  /** Resolves once the store holds what is kept now. */
  idle(): Promise<void> {
    return this.writes
  }

  /** An update or snapshot of this device's in this session: what a snapshot re-seals (a control message it does not). */
  private isOwn(env: Envelope): boolean {
    const h = env.header
    return (h.kind === 'update' || h.kind === 'snapshot') && h.sessionId === this.host.sessionId && equalBytes(h.device, this.host.device)
  }

  private track(key: string, env: Envelope): void {
    const entry: Kept = { env, plaintext: null }
    this.kept.set(key, entry)
    const opened = this.host.open(env).then((p) => {
      entry.plaintext = p
    })
    this.opening = Promise.all([this.opening, opened]).then(() => undefined)
  }

  /** Store writes run one at a time, in order, so a keep and a later forget of one key land in that order. */
  private write(op: () => Promise<void>): void {
    this.writes = this.writes.then(op).catch((e: unknown) => this.host.failed(e))
  }
}

function decodeLog(log: Uint8Array[], sessionId: string): Envelope[] {
  const out: Envelope[] = []
  for (const bytes of log) {
    try {
      const env = decodeEnvelope(bytes)
      if (env.header.sessionId === sessionId) out.push(env)
    } catch {
      // not an envelope
    }
  }
  return out
}

/**
 * Which of `envelopes` a snapshot in `log` holds, by the compaction rule,
 * the chains walked through the log, the envelopes just deleted from it
 * and `envelopes` themselves.
 */
function heldBy(log: Envelope[], deleted: Envelope[], envelopes: Envelope[]): Envelope[] {
  const snapshots = log.filter((env) => env.header.kind === 'snapshot')
  if (snapshots.length === 0) return []
  const chains = new CoverChains([...log, ...deleted, ...envelopes])
  return envelopes.filter((env) => chains.holds(snapshots, env))
}
