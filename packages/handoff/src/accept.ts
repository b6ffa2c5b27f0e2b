import { KaiError, type Mode, type SessionRecord, type TransferType, type VolatileState } from '@kai-sync/model'
import { toRecord } from '@kai-sync/model/record'
import {
  SessionKeyring,
  decodeEnvelope,
  defaultVerifier,
  fromBase64Url,
  toBase64Url,
  type BoxKey,
  type DeviceKey,
  type SignatureVerifier,
} from '@kai-sync/crypto'
import { handoffTokenId, signHandoffClaim } from '@kai-sync/crypto/handoff-token'
import { SyncEngine, WireDoc, openPresence, type SyncEngineOptions } from '@kai-sync/engine'
import { checkResumeLink, parseResumeLink } from './link'
import type { HandoffRelay } from './relay-client'

/** A live connection of a wire doc to the relay. */
export interface Transport {
  destroy(): void
}

export interface AcceptOptions {
  device: DeviceKey
  box: BoxKey
  mode: Mode
  /** How this device shows in the roster ("Pixel 8"). */
  label: string
  relay: HandoffRelay
  /** Connects the engine's wire doc to the relay; resolves once the first sync is done. */
  connect(engine: SyncEngine, relayUrl: string): Promise<Transport>
  verifier?: SignatureVerifier
  now?: () => number
  /** How long to wait for the invite's roster entry to reach this device after the first sync (default 30 s). */
  inviteWaitMs?: number
  /** How long to wait, once enrolled, for a writer to grant this device the session keys (default 30 s). */
  keyWaitMs?: number
  engine?: Partial<Omit<SyncEngineOptions, 'sessionId' | 'wire' | 'device' | 'box' | 'keys' | 'mode'>>
}

export interface AcceptedHandoff {
  engine: SyncEngine
  transport: Transport
  record: SessionRecord
  transfer: TransferType
  /** The source's volatile state (streaming buffer, scratchpad, UI state), to continue from. */
  volatile: VolatileState | null
}

/**
 * The seed's acceptHandoff, on the target: checks the whole link (its
 * token's signature and expiry, its invite secret against the token) before
 * anything is spent, has the relay burn the token for this device's keys,
 * syncs, enrolls this device with the invite key (its authority traces back
 * to the issuer), waits for a writer to grant it the session keys (the link
 * carries none), and returns the session as it stands with the source's
 * volatile state. The same device may run it again with the same link while
 * the token lives: the relay and the roster both take the retry.
 */
export async function acceptHandoff(link: string, options: AcceptOptions): Promise<AcceptedHandoff> {
  const payload = parseResumeLink(link)
  const { token } = payload
  const verifier = options.verifier ?? (await defaultVerifier())
  const invite = await checkResumeLink(payload, verifier, (options.now ?? Date.now)())
  const claim = await signHandoffClaim(token, invite, options.device.publicKey, options.box.publicKey)
  const resumed = await options.relay.resume(token.sessionId, {
    token: toBase64Url(token.bytes),
    device: toBase64Url(options.device.publicKey),
    box: toBase64Url(options.box.publicKey),
    claim: toBase64Url(claim),
  })
  const engine = await SyncEngine.open({
    ...options.engine,
    sessionId: token.sessionId,
    wire: new WireDoc(),
    device: options.device,
    box: options.box,
    keys: new SessionKeyring(),
    mode: options.mode,
    verifier,
    ...(options.now ? { now: options.now } : {}),
  })
  let transport: Transport | undefined
  try {
    transport = await options.connect(engine, payload.relayUrl)
    await engine.whenIdle()
    // A retry by a device that enrolled already skips straight to its keys.
    if (engine.role !== resumed.role) {
      const issuerRole = engine.roster.roleOf(token.issuer)
      if (issuerRole !== 'owner' && issuerRole !== 'writer') {
        throw new KaiError('forbidden', 'the device that issued this handoff may not hand the session off')
      }
      // The invite's roster entry reaches the relay over the source's own
      // connection, the token over HTTP: if the source was offline or slow,
      // the target can get here first. Enrolling now would be refused and
      // waste the burned token, so wait a while for the invite to arrive.
      await until(onRoster(engine), () => engine.roster.roleOf(token.invite) !== undefined, options.inviteWaitMs ?? INVITE_WAIT_MS)
      await engine.enrollWithInvite(invite, resumed.role, options.label)
      await engine.whenIdle()
    }
    // A writer that holds the keys grants them to this device's box once
    // its enrollment arrives (the source does at once).
    const keyed = await until(onKey(engine), () => holdsEveryKey(engine), options.keyWaitMs ?? KEY_WAIT_MS)
    if (!keyed) {
      throw new KaiError('unavailable', 'this device is enrolled, but no writer has granted it the session keys yet; keep the source device online and open the link again')
    }
    await engine.whenIdle()
    if (engine.canWrite) {
      engine.session.appendAudit({
        id: `handoff.accepted:${handoffTokenId(token)}`,
        action: 'handoff.accepted',
        details: { transfer: token.transfer, from: toBase64Url(token.issuer), source_mode: token.sourceMode, target_mode: token.targetMode },
      })
      await engine.flush()
    }
    let volatile: VolatileState | null = null
    const sealed = resumed.volatile ? fromBase64Url(resumed.volatile) : null
    // The relay parks it: one that does not open (changed on the way) is
    // dropped, not fatal, since the device is enrolled by now.
    if (sealed) volatile = await openPresence(engine, sealed).then((p) => p.state.volatile, () => null)
    return { engine, transport, record: toRecord(engine.session), transfer: token.transfer, volatile }
  } catch (e) {
    transport?.destroy()
    engine.destroy()
    throw e
  }
}

const INVITE_WAIT_MS = 30_000
const KEY_WAIT_MS = 30_000

/** Whether the engine holds a key, and the key of every epoch an envelope in its log was sealed under. */
function holdsEveryKey(engine: SyncEngine): boolean {
  if (engine.keys.epochs().length === 0) return false
  for (const bytes of engine.wire.envelopes()) {
    let epoch: number
    try {
      epoch = decodeEnvelope(bytes).header.epoch
    } catch {
      continue // refused by the engine anyway
    }
    if (!engine.keys.has(epoch)) return false
  }
  return true
}

type Subscribe = (listener: () => void) => () => void

const onRoster = (engine: SyncEngine): Subscribe => (listener) => {
  engine.roster.on('change', listener)
  return () => engine.roster.off('change', listener)
}

const onKey = (engine: SyncEngine): Subscribe => (listener) => {
  engine.on('key', listener)
  return () => engine.off('key', listener)
}

/** Resolves true once `done()` holds (checked now and at each event), or false after `timeoutMs`. */
function until(subscribe: Subscribe, done: () => boolean, timeoutMs: number): Promise<boolean> {
  if (done()) return Promise.resolve(true)
  return new Promise((resolve) => {
    const finish = (result: boolean) => {
      clearTimeout(timer)
      unsubscribe()
      resolve(result)
    }
    const timer = setTimeout(() => finish(false), timeoutMs)
    const unsubscribe = subscribe(() => {
      if (done()) finish(true)
    })
  })
}
