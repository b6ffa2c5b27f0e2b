import { Awareness } from 'y-protocols/awareness'
import { ObservableV2 } from 'lib0/observable'
import * as z from 'zod/mini'
// Named, not z.core.$ZodError: reaching through the core namespace would
// bundle all of zod's core (its 64 locales too) into the web app.
import { $ZodError } from 'zod/v4/core'
import { KaiError, ModeSchema, VolatileStateSchema, toKaiError, type Mode, type VolatileState } from '@kai-sync/model'
import {
  ZERO_HASH,
  decodeEnvelope,
  fromBase64Url,
  openEnvelope,
  sealEnvelope,
  toBase64Url,
  verifyEnvelope,
  type Role,
} from '@kai-sync/crypto'
import type { SyncEngine } from './sync-engine'

/** What one JS context shares with every other context holding the session. */
export const PresenceStateSchema = z.object({
  mode: ModeSchema,
  label: z.string().check(z.maxLength(100)),
  volatile: VolatileStateSchema,
  /** True once the context is closing (the seed's MODE_CLOSING). */
  closing: z.boolean(),
})
export type PresenceState = z.infer<typeof PresenceStateSchema>

/**
 * The volatile state with every claim on the session's work dropped: no
 * reply streaming, no tool running, no draft being typed. What a device
 * shows once it may no longer write (a takeover moved the session away):
 * the claims belong to its successor, which continues from them.
 */
export function withoutClaims(volatile: VolatileState): VolatileState {
  const { draft: _draft, ...ui_state } = volatile.ui_state
  return { ...volatile, streaming: null, active_tools: [], ui_state }
}

/** Another context's presence, or this one's (`self`). */
export interface Peer extends PresenceState {
  /** The awareness client id (one per context). */
  clientId: number
  /** The device's id: its public key, base64url. */
  device: string
  /** The device's role in the roster now (not when its state arrived: a takeover source steps down later). */
  role: Role | undefined
  updatedAt: number
  self: boolean
}

export interface PresenceEvents {
  change: (peers: Peer[]) => void
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
/** How long a closed context stays listed (closing: true) after it leaves. */
const CLOSED_VISIBLE_MS = 15_000

/**
 * Live presence and volatile state over y-protocols awareness, sealed like
 * everything else: the awareness state a relay forwards is `{ k: <sealed
 * presence envelope> }`, so it sees who is connected but not what they
 * share. Receivers check the signer is in the roster and drop states older
 * than one they already have.
 */
export class Presence extends ObservableV2<PresenceEvents> {
  readonly awareness: Awareness
  private readonly peersById = new Map<number, Peer>()
  private readonly newest = new Map<string, number>()
  private seq = 0
  private local: PresenceState
  private queue: Promise<void> = Promise.resolve()
  /** A closing twin of the last published state, sealed ahead so `closeNow` needs no await. */
  private closingSealed: string | null = null
  private closed = false

  constructor(
    private readonly engine: SyncEngine,
    init: { mode: Mode; label?: string; volatile?: Partial<VolatileState> },
  ) {
    super()
    this.awareness = new Awareness(engine.wire.doc)
    this.awareness.setLocalState(null)
    this.local = { mode: init.mode, label: init.label ?? init.mode, volatile: VolatileStateSchema.parse(init.volatile ?? {}), closing: false }
    this.awareness.on('change', this.onChange)
  }

  /** This context's current state. */
  get state(): PresenceState {
    return this.local
  }

  /** Publishes this context's state (merged with `patch`), sealed. */
  publish(patch: Partial<Omit<PresenceState, 'volatile'>> & { volatile?: Partial<VolatileState> } = {}): Promise<void> {
    this.local = {
      ...this.local,
      ...patch,
      volatile: VolatileStateSchema.parse({ ...this.local.volatile, ...patch.volatile }),
    }
    const state = this.local
    this.queue = this.queue.then(async () => {
      const sealed = await sealPresence(this.engine, state, ++this.seq)
      const closing = state.closing ? null : await sealPresence(this.engine, { ...state, closing: true }, ++this.seq)
      if (this.closed) return
      this.awareness.setLocalState({ k: toBase64Url(sealed) })
      this.closingSealed = closing && toBase64Url(closing)
      this.emit('change', [this.peers()])
    })
    return this.queue
  }

  /** Says this context is closing, so others can show it, then leaves. */
  async close(): Promise<void> {
    await this.publish({ closing: true })
    this.awareness.setLocalState(null)
  }

  /**
   * Says this context is closing without awaiting anything, for `pagehide`,
   * after which no promise settles: announces the closing state sealed at
   * the last publish, then leaves. Nothing is published after it.
   */
  closeNow(): void {
    this.closed = true
    if (this.closingSealed) this.awareness.setLocalState({ k: this.closingSealed })
    this.awareness.setLocalState(null)
  }

  /** Every context with the session open, this one first; recently closed ones last. */
  peers(): Peer[] {
    const self: Peer = {
      ...this.local,
      clientId: this.awareness.clientID,
      device: toBase64Url(this.engine.device.publicKey),
      role: this.engine.role,
      updatedAt: Date.now(),
      self: true,
    }
    const now = Date.now()
    const others = [...this.peersById.values()]
      .filter((p) => !p.closing || now - p.updatedAt < CLOSED_VISIBLE_MS)
      .map((p) => ({ ...p, role: this.engine.roster.roleOf(fromBase64Url(p.device)!) }))
    others.sort((a, b) => Number(a.closing) - Number(b.closing) || a.mode.localeCompare(b.mode) || a.clientId - b.clientId)
    return [self, ...others]
  }

  override destroy(): void {
    this.awareness.off('change', this.onChange)
    this.awareness.destroy()
    super.destroy()
  }

  private readonly onChange = ({ added, updated, removed }: { added: number[]; updated: number[]; removed: number[] }): void => {
    for (const id of removed) {
      const peer = this.peersById.get(id)
      // A context that said it was closing stays listed as closed a while.
      if (peer?.closing) peer.updatedAt = Date.now()
      else this.peersById.delete(id)
    }
    const changed = [...added, ...updated].filter((id) => id !== this.awareness.clientID)
    if (removed.length > 0 && changed.length === 0) this.emit('change', [this.peers()])
    if (changed.length === 0) return
    void Promise.all(changed.map((id) => this.receive(id))).then(() => this.emit('change', [this.peers()]))
  }

  private async receive(clientId: number): Promise<void> {
    const sealed = (this.awareness.getStates().get(clientId) as { k?: unknown } | undefined)?.k
    if (typeof sealed !== 'string') return
    const bytes = fromBase64Url(sealed)
    if (!bytes) return
    try {
      const { state, device, stream, seq } = await openPresence(this.engine, bytes)
      // It may have left while we verified: keep it only if it said it was closing.
      const current = (this.awareness.getStates().get(clientId) as { k?: unknown } | undefined)?.k
      if (current !== sealed && !(current === undefined && state.closing)) return
      const key = `${device}/${stream}`
      if ((this.newest.get(key) ?? 0) >= seq) return // older than what we have
      this.newest.set(key, seq)
      const member = this.engine.roster.member(fromBase64Url(device)!)
      this.peersById.set(clientId, { ...state, clientId, device, role: member?.role, updatedAt: Date.now(), self: false })
    } catch {
      // Not from a member, tampered, or under a key we lack: not shown.
    }
  }
}

/** Seals a presence state (also how a device keeps its volatile state at rest). */
export async function sealPresence(engine: SyncEngine, state: PresenceState, seq = 1): Promise<Uint8Array> {
  const envelope = await sealEnvelope({
    header: {
      kind: 'presence',
      sessionId: engine.sessionId,
      stream: engine.position.stream,
      seq,
      prev: ZERO_HASH,
      createdAt: Date.now(),
      clientIds: [],
      covers: [],
    },
    plaintext: encoder.encode(JSON.stringify(state)),
    key: engine.keys.current,
    signer: engine.device,
  })
  return envelope.bytes
}

/** Opens a sealed presence state, checking signer, session and key. */
export async function openPresence(
  engine: SyncEngine,
  bytes: Uint8Array,
): Promise<{ state: PresenceState; device: string; stream: string; seq: number }> {
  try {
    const envelope = decodeEnvelope(bytes)
    const h = envelope.header
    if (h.kind !== 'presence') throw new KaiError('malformed', `a ${h.kind} envelope is not a presence state`)
    if (h.sessionId !== engine.sessionId) throw new KaiError('wrong_session', 'presence for another session')
    const role = engine.roster.roleOf(h.device)
    if (!role) throw new KaiError('unknown_signer', 'presence from a device not in the roster')
    if (role === 'removed') throw new KaiError('unauthorized_signer', 'presence from a removed device')
    await verifyEnvelope(envelope, engine.verifier)
    const plaintext = await openEnvelope(envelope, engine.keys)
    const state = PresenceStateSchema.parse(JSON.parse(decoder.decode(plaintext)))
    return { state, device: toBase64Url(h.device), stream: toBase64Url(h.stream), seq: h.seq }
  } catch (e) {
    throw e instanceof $ZodError || e instanceof SyntaxError ? new KaiError('malformed', 'the presence state does not parse') : toKaiError(e)
  }
}
