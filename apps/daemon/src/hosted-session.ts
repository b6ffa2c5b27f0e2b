import { z } from 'zod'
import { ObservableV2 } from 'lib0/observable'
import {
  KaiError,
  VolatileStateSchema,
  parseInput,
  type ConflictInfo,
  type SessionRecord,
  type VolatileState,
} from '@kai-sync/model'
import { toRecord } from '@kai-sync/model/record'
import { equalBytes } from '@kai-sync/crypto'
import { withoutClaims, type Presence, type SyncEngine } from '@kai-sync/engine'
import { readPrivateFile, writePrivateFile, type DataDir } from './data-dir'
import { saveSessionKeys } from './key-files'
import type { Logger } from './log'
import type { RelayConnection, RelayState } from './relay-transport'
import type { WirePersistence } from './wire-persistence'

// One session this daemon holds: its engine, its wire doc in the store, its
// link to the relay, its live presence (sealed, over that link, as a browser
// context's), and what the daemon keeps beside it in `sessions/<id>.json`
// (0600, plaintext): the relay it syncs through, its volatile state (at
// rest, for the API and a handoff), and where it went if another device
// took it over.

const SessionFileSchema = z.object({
  relay: z.string().optional(),
  volatile: z.optional(VolatileStateSchema),
  moved_to: z.object({ device: z.string(), label: z.string() }).optional(),
})
export type SessionFile = z.infer<typeof SessionFileSchema>

export function readSessionFile(dir: DataDir, sessionId: string): SessionFile {
  const text = readPrivateFile(dir.sessionMetaFile(sessionId))
  return text ? parseInput(SessionFileSchema, JSON.parse(text), dir.sessionMetaFile(sessionId)) : {}
}

function counts(byCode: Partial<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [code, n] of Object.entries(byCode)) if (n) out[code] = n
  return out
}

export interface HostedSessionEvents {
  /** Something other than the session doc changed: sync state, relay link, a takeover. */
  status: () => void
  /** A `user_choice` conflict opened: the API's clients are asked to pick (see `choices`). */
  choice: (conflict: ConflictInfo) => void
}

export class HostedSession extends ObservableV2<HostedSessionEvents> {
  transport: RelayConnection | undefined
  private keysSaved: Promise<void> = Promise.resolve()
  private keyFailure: KaiError | null = null
  /** The open `user_choice` conflicts this device was asked about and that no one resolved yet. */
  private readonly asking = new Set<ConflictInfo>()

  constructor(
    readonly engine: SyncEngine,
    readonly persistence: WirePersistence,
    private readonly dir: DataDir,
    private file: SessionFile,
    private readonly log: Logger,
    /** This device's presence in the session; its awareness is the one the relay link carries. */
    readonly presence: Presence,
  ) {
    super()
    persistence.reportTo(engine)
    this.publishPresence({ volatile: this.volatile() })
    engine.on('key', () => {
      // The first key lets the presence be sealed; a new epoch's key reseals it for the members that remain.
      this.publishPresence({ volatile: this.volatile() })
      // Every epoch's key, rewritten whole: a new epoch must survive a restart.
      // A failure is kept for `settle` to report, not left as an unhandled rejection.
      this.keysSaved = this.keysSaved
        .then(() => this.saveKeys())
        .then(
          () => {
            this.keyFailure = null
          },
          (cause: unknown) => {
            this.keyFailure = new KaiError('unavailable', `the keys of session ${this.id} could not be saved`, { cause })
            log.error('cannot save session keys', { session: this.id, error: (cause as Error).message })
          },
        )
    })
    engine.on('status', () => this.emit('status', []))
    // A daemon has no dialog: it asks whoever follows its event stream, and
    // the answer comes back as POST /conflicts/resolve, which closes the
    // conflict (and with it this question) on every device.
    engine.session.policies.setUserChoice((conflict, { signal }) => {
      this.asking.add(conflict)
      this.emit('choice', [conflict])
      return new Promise((resolve) => {
        signal.addEventListener('abort', () => {
          this.asking.delete(conflict)
          resolve(undefined)
        })
      })
    })
    engine.on('rejected', (r) => {
      // A gap in this device's own stream is a bug to hear about, not noise from others.
      if (r.code === 'own_gap') log.error('own envelopes were held for a gap; repaired', { session: this.id, message: r.message })
      else log.debug('envelope not applied', { session: this.id, code: r.code, held: r.held })
    })
    engine.on('moved', (to, from) => {
      // Only this device's own step-down moves the session away from here.
      if (!equalBytes(from, engine.device.publicKey)) return
      // Its claims (a reply streaming, tools running, a draft) are the successor's now.
      this.file = { ...this.file, moved_to: { device: to.device, label: to.label }, ...(this.file.volatile ? { volatile: withoutClaims(this.volatile()) } : {}) }
      this.saveFile()
      this.publishPresence({ volatile: withoutClaims(this.presence.state.volatile) })
      log.info('session taken over by another device', { session: this.id, label: to.label })
      this.emit('status', [])
    })
  }

  get id(): string {
    return this.engine.sessionId
  }

  /** The `user_choice` conflicts waiting for a client's answer. */
  choices(): ConflictInfo[] {
    return [...this.asking]
  }

  get relayUrl(): string | undefined {
    return this.file.relay
  }

  /** The sync status as the API shows it: its state, and what is held or refused, by code. */
  syncStatus(): { state: 'pending' | 'saved' | 'synced'; held: number; held_by: Record<string, number>; refused: number; refused_by: Record<string, number> } {
    const s = this.engine.status
    return { state: s.state, held: s.held, held_by: counts(s.heldBy), refused: s.refused, refused_by: counts(s.refusedBy) }
  }

  get relayState(): RelayState | 'off' {
    return this.transport?.state ?? 'off'
  }

  /** False until this device holds a key and the session's identity has been decrypted. */
  get ready(): boolean {
    return this.engine.keys.epochs().length > 0 && this.engine.session.metaOrNull() !== null
  }

  /**
   * Resolves once the relay has stored everything this device wrote to the
   * wire doc (its roster entries included), or fails with `unavailable`
   * after `timeoutMs`.
   */
  async whenRelayHolds(timeoutMs: number): Promise<void> {
    const transport = this.transport
    if (!transport) throw new KaiError('unavailable', 'this session is not linked to a relay')
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new KaiError('unavailable', 'the relay has not stored this session yet: try again once it is reachable')), timeoutMs)
    })
    try {
      await Promise.race([transport.whenAcknowledged(), late])
    } finally {
      clearTimeout(timer)
    }
  }

  attachTransport(transport: RelayConnection): void {
    this.transport = transport
    transport.on('state', () => this.emit('status', []))
  }

  record(): SessionRecord {
    if (!this.ready) throw new KaiError('unavailable', `this device has no key for session ${this.id} yet; it arrives through the relay once a member enrolls this device`)
    // Config and message conflicts under the session's own policies (stored in
    // the session doc, so every replica shows the same).
    return toRecord(this.engine.session, { volatile: this.volatile() })
  }

  /** The config as shown, with its open conflicts (from the conflict policies). */
  configView(): { config: SessionRecord['config']; conflicts: SessionRecord['conflicts'] } {
    const { config, conflicts } = this.record()
    return { config, conflicts }
  }

  volatile(): VolatileState {
    return VolatileStateSchema.parse(this.file.volatile ?? {})
  }

  /** Updates this device's volatile state: shared live through its presence, kept in the session file. */
  setVolatile(patch: Partial<VolatileState>): void {
    this.file = { ...this.file, volatile: { ...this.volatile(), ...patch } }
    this.saveFile()
    this.publishPresence({ volatile: patch })
  }

  /** True once this device holds a key to seal its presence with. */
  private get canSeal(): boolean {
    return this.engine.keys.epochs().length > 0
  }

  /**
   * Publishes the presence (its volatile state merged with `patch`), in
   * order, so a reply's last state (not replying) is the one left. Without
   * a key nothing can be sealed: the first key publishes the whole state
   * from the session file.
   */
  private publishPresence(patch: Parameters<Presence['publish']>[0]): void {
    if (!this.canSeal) return
    this.presence.publish(patch).catch((e: unknown) => this.log.warn('cannot publish presence', { session: this.id, error: (e as Error).message }))
  }

  get movedTo(): SessionFile['moved_to'] {
    return this.file.moved_to
  }

  /** Throws `forbidden` unless this device may write now (so nothing is half-applied). */
  assertWritable(): void {
    if (this.engine.canWrite) return
    const moved = this.file.moved_to
    if (moved) throw new KaiError('forbidden', `this session moved to ${moved.label}; this device may only read it`)
    if (this.engine.role === 'reader') {
      throw new KaiError('forbidden', 'this device observes this session (role reader) and may only read it; to write, have a writer hand it off here with --type mirror or takeover')
    }
    throw new KaiError('forbidden', 'this device may not write in this session (it is not a writer in its roster)')
  }

  /** Seals every local change and waits until the store holds it: then a write is durable. */
  async settle(): Promise<void> {
    await this.engine.flush()
    await this.keysSaved
    if (this.keyFailure) throw this.keyFailure
    await this.persistence.whenStored()
  }

  /** Resolves once the store holds every update of the wire doc so far (remote ones too). */
  whenStored(): Promise<void> {
    return this.persistence.whenStored()
  }

  async saveKeys(): Promise<void> {
    await saveSessionKeys(this.dir, this.id, this.engine.keys.epochs().map((e) => this.engine.keys.get(e)!))
  }

  saveFile(): void {
    writePrivateFile(this.dir.sessionMetaFile(this.id), JSON.stringify(this.file, null, 2) + '\n')
  }

  async close(): Promise<void> {
    // Others see this device leave (closing, then gone) before the link drops.
    if (this.canSeal) await this.presence.close().catch(() => undefined)
    this.transport?.destroy()
    this.presence.destroy()
    await this.engine.flush().catch(() => undefined)
    await this.keysSaved
    await this.persistence.destroy()
    this.engine.destroy()
    super.destroy()
  }
}

