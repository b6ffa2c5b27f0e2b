import QRCode from 'qrcode'
import {
  KaiError,
  parseInput,
  type HandoffIntent,
  type HandoffResponse,
  type Mode,
  type TransferType,
  type VolatileState,
} from '@kai-sync/model'
import { HandoffIntentSchema } from '@kai-sync/model/exchange-schemas'
import { toBase64Url } from '@kai-sync/crypto'
import { handoffTokenId, signHandoffToken, type HandoffToken } from '@kai-sync/crypto/handoff-token'
import { sealPresence, type SyncEngine } from '@kai-sync/engine'
import { encodeResumeLink } from './link'
import type { HandoffRelay } from './relay-client'

export interface InitiateOptions {
  /** Where the resume page lives (the PWA's /resume, or any URL a CLI will be given). */
  appUrl: string
  /** The relay the target reaches the session through (ws:// or wss://). */
  relayUrl: string
  relay: HandoffRelay
  /** This context's volatile state, carried to the target (the intent's, if it has one, wins). */
  volatile?: VolatileState
  label?: string
}

export interface InitiatedHandoff extends HandoffResponse {
  token: HandoffToken
}

/**
 * The seed's initiateHandoff: a one-time invite in the roster, a token
 * signed by this device and registered with the relay (with the volatile
 * state sealed beside it), and a QR code of the resume link whose fragment
 * holds what the relay must never see: the invite's secret. It holds no
 * session key: the engine grants the keys to the target's box once the
 * target has enrolled (see Membership.deliverKeys).
 */
export async function initiateHandoff(engine: SyncEngine, input: HandoffIntent, options: InitiateOptions): Promise<InitiatedHandoff> {
  const intent = parseInput(HandoffIntentSchema, input, 'handoff intent')
  if (intent.session_id !== engine.sessionId) throw new KaiError('wrong_session', 'the intent names another session than this engine\'s')
  if (!engine.canWrite) throw new KaiError('forbidden', 'a read-only device cannot hand the session off')
  const { invite } = await engine.createInvite(intent.transfer_type)
  const token = await signHandoffToken(
    { sessionId: engine.sessionId, sourceMode: intent.source_mode, targetMode: intent.target_mode, transfer: intent.transfer_type, invite: invite.publicKey },
    engine.device,
  )
  const volatile = intent.volatile ?? options.volatile
  const sealed = volatile
    ? await sealPresence(engine, { mode: intent.source_mode, label: options.label ?? intent.source_mode, volatile, closing: false })
    : undefined
  const registered = await options.relay.register(engine.sessionId, {
    token: toBase64Url(token.bytes),
    ...(sealed ? { volatile: toBase64Url(sealed) } : {}),
  })
  engine.session.appendAudit({
    id: `handoff.initiated:${handoffTokenId(token)}`,
    action: 'handoff.initiated',
    details: { transfer: intent.transfer_type, source_mode: intent.source_mode, target_mode: intent.target_mode },
  })
  const inviteSecret = invite.exportSecret()
  const resumeUrl = encodeResumeLink(options.appUrl, { token, inviteSecret, relayUrl: options.relayUrl })
  inviteSecret.fill(0)
  const [svg, dataUrl] = await Promise.all([
    QRCode.toString(resumeUrl, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 }),
    QRCode.toDataURL(resumeUrl, { errorCorrectionLevel: 'M', margin: 2 }),
  ])
  return {
    handoff_token: toBase64Url(token.bytes),
    qr_code: { svg, data_url: dataUrl },
    resume_url: resumeUrl,
    expires_at: registered.expires_at,
    instructions: instructionsFor(intent.target_mode, intent.transfer_type),
    token,
  }
}

/** What the person holding the source device is told to do. */
export function instructionsFor(target: Mode, transfer: TransferType): string {
  const how: Record<Mode, string> = {
    mobile: 'Scan this code with your phone\'s camera and open the link.',
    desktop: 'Open the link on your desktop, in the installed kai app or its browser.',
    popup: 'Open the link in the browser where the kai extension is installed.',
    tab: 'Open the link in the browser where the kai extension is installed.',
    sidepanel: 'Open the link in the browser where the kai extension is installed, then open its side panel.',
    headless: 'On the server, run kai resume - and paste the link (it stays out of the shell\'s history).',
  }
  const then: Record<TransferType, string> = {
    takeover: 'The session continues there, and this device becomes read-only.',
    mirror: 'Both devices can then write to the session.',
    observe: 'That device can then follow the session but not write to it.',
  }
  return `${how[target]} ${then[transfer]} The code works once, for five minutes.`
}

/** A terminal-friendly QR code of a resume link (for the CLI). */
export function qrForTerminal(resumeUrl: string): Promise<string> {
  // The utf8 renderer packs two rows per line and needs an even margin (1 throws "Invalid array length").
  return QRCode.toString(resumeUrl, { type: 'utf8', errorCorrectionLevel: 'M', margin: 2 })
}
