import { KaiError, toRecord, type Mode, type SessionRecord, type TransferType, type VolatileState } from '@kai-sync/model'
import {
  NobleDeviceKey,
  SessionKey,
  SessionKeyring,
  defaultVerifier,
  fromBase64Url,
  handoffTokenId,
  toBase64Url,
  verifyHandoffToken,
  type BoxKey,
  type DeviceKey,
  type SignatureVerifier,
} from '@kai-sync/crypto'
import { SyncEngine, WireDoc, openPresence, type SyncEngineOptions } from '@kai-sync/engine'
import { parseResumeLink } from './link'
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
 * The seed's acceptHandoff, on the target: checks the token, has the relay
 * burn it, opens the session with the keys from the link, syncs, enrolls
 * this device with the invite key (its authority traces back to the
 * issuer), and returns the session as it stands with the source's
 * volatile state.
 */
export async function acceptHandoff(link: string, options: AcceptOptions): Promise<AcceptedHandoff> {
  const payload = parseResumeLink(link)
  const { token } = payload
  const verifier = options.verifier ?? (await defaultVerifier())
  await verifyHandoffToken(token, verifier, { now: (options.now ?? Date.now)() })
  const resumed = await options.relay.resume(token.sessionId, {
    token: toBase64Url(token.bytes),
    device: toBase64Url(options.device.publicKey),
    box: toBase64Url(options.box.publicKey),
  })
  const keys = new SessionKeyring(await Promise.all(payload.keys.map((k) => SessionKey.fromRaw(k.epoch, k.key, { extractable: true }))))
  payload.keys.forEach((k) => k.key.fill(0))
  const engine = await SyncEngine.open({
    ...options.engine,
    sessionId: token.sessionId,
    wire: new WireDoc(),
    device: options.device,
    box: options.box,
    keys,
    mode: options.mode,
    verifier,
    ...(options.now ? { now: options.now } : {}),
  })
  let transport: Transport | undefined
  try {
    transport = await options.connect(engine, payload.relayUrl)
    await engine.whenIdle()
    const issuerRole = engine.roster.roleOf(token.issuer)
    if (issuerRole !== 'owner' && issuerRole !== 'writer') {
      throw new KaiError('forbidden', 'the device that issued this handoff may not hand the session off')
    }
    // The invite's roster entry reaches the relay over the source's own
    // connection, the token over HTTP: if the source was offline or slow,
    // the target can get here first. Enrolling now would be refused and
    // waste the burned token, so wait a while for the invite to arrive.
    await rosterHolds(engine, token.invite, options.inviteWaitMs ?? INVITE_WAIT_MS)
    await engine.enrollWithInvite(NobleDeviceKey.fromSecret(payload.inviteSecret), resumed.role, options.label)
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
    if (sealed) volatile = (await openPresence(engine, sealed)).state.volatile
    return { engine, transport, record: toRecord(engine.session), transfer: token.transfer, volatile }
  } catch (e) {
    transport?.destroy()
    engine.destroy()
    throw e
  }
}

const INVITE_WAIT_MS = 30_000

/** Resolves once the engine's roster holds `device` (in any role), or after `timeoutMs`. */
function rosterHolds(engine: SyncEngine, device: Uint8Array, timeoutMs: number): Promise<void> {
  if (engine.roster.roleOf(device) !== undefined) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      engine.roster.off('change', check)
      resolve()
    }
    const check = () => {
      if (engine.roster.roleOf(device) !== undefined) done()
    }
    const timer = setTimeout(done, timeoutMs)
    engine.roster.on('change', check)
  })
}
