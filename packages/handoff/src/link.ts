import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { KaiError } from '@kai-sync/model'
import {
  equalBytes,
  fromBase64Url,
  sha256,
  toBase64Url,
  type SignatureVerifier,
} from '@kai-sync/crypto'
import { decodeHandoffToken, verifyHandoffToken, type HandoffToken } from '@kai-sync/crypto/handoff-token'
import { NobleDeviceKey } from '@kai-sync/crypto/noble'

// The resume link a handoff's QR code encodes:
//
//   <app url>#kai=<base64url of: version u8 | token varUint8Array
//                  | invite secret 32B | relay url varString | check 4B>
//
// It carries what enrollment needs and no session key: once the target has
// enrolled, a writer grants it the keys to its X25519 box (key grants), so
// a link seen later (a photo of the code, shell history, scrollback) opens
// nothing. `check` is the first 4 bytes of SHA-256 over what precedes it,
// so a damaged link is refused whole before anything is sent (the token
// and the secret are checked on their own too, see checkResumeLink).
// Everything after '#' stays in the browser (or the CLI): a fragment is
// never sent to a server, so the relay never sees the invite secret.

const FORMAT = 2
const PARAM = 'kai='
const CHECK_BYTES = 4
const SECRET_BYTES = 32

export interface ResumeLinkPayload {
  token: HandoffToken
  /** The one-time invite key's secret, for the target to sign its claim and its own roster entry. */
  inviteSecret: Uint8Array
  /** The relay to reach the session through (ws:// or wss://). */
  relayUrl: string
}

export function encodeResumeLink(appUrl: string, payload: ResumeLinkPayload): string {
  const e = encoding.createEncoder()
  encoding.writeUint8(e, FORMAT)
  encoding.writeVarUint8Array(e, payload.token.bytes)
  encoding.writeUint8Array(e, payload.inviteSecret)
  encoding.writeVarString(e, payload.relayUrl)
  const body = encoding.toUint8Array(e)
  const bytes = new Uint8Array(body.length + CHECK_BYTES)
  bytes.set(body)
  bytes.set(sha256(body).subarray(0, CHECK_BYTES), body.length)
  const base = appUrl.split('#')[0]!
  return `${base}#${PARAM}${toBase64Url(bytes)}`
}

/** The fragment's bytes (what a QR code of the link carries past the app's address). */
export function resumeLinkBytes(link: string): Uint8Array {
  const at = link.indexOf(`#${PARAM}`)
  const bytes = at < 0 ? null : fromBase64Url(link.slice(at + 1 + PARAM.length).trim())
  if (!bytes || bytes.length === 0) throw new KaiError('invalid_input', 'this is not a kai-sync resume link (no #kai= fragment)')
  return bytes
}

/** Decodes a link and checks its shape: every field, and that nothing in it was changed or cut off. */
export function parseResumeLink(link: string): ResumeLinkPayload {
  const bytes = resumeLinkBytes(link)
  if (bytes[0] !== FORMAT) {
    throw new KaiError('unsupported_version', bytes[0]! < FORMAT ? `resume link format ${bytes[0]} is from an older kai-sync; start a new handoff` : `resume link format ${bytes[0]} is from a newer kai-sync; upgrade this device`)
  }
  const body = bytes.subarray(0, bytes.length - CHECK_BYTES)
  if (bytes.length <= CHECK_BYTES || !equalBytes(sha256(body).subarray(0, CHECK_BYTES), bytes.subarray(body.length))) {
    throw new KaiError('malformed', 'the resume link was changed or cut short; scan the code again or copy the whole link')
  }
  let payload: ResumeLinkPayload
  try {
    const d = decoding.createDecoder(body)
    d.pos = 1
    const token = decodeHandoffToken(decoding.readVarUint8Array(d))
    const inviteSecret = decoding.readUint8Array(d, SECRET_BYTES)
    const relayUrl = decoding.readVarString(d)
    if (d.pos !== body.length) throw new KaiError('malformed', 'bytes after the relay address')
    payload = { token, inviteSecret: inviteSecret.slice(), relayUrl }
  } catch (e) {
    if (e instanceof KaiError) throw e
    throw new KaiError('malformed', 'the resume link is truncated or corrupt; scan the code again')
  }
  if (!isRelayUrl(payload.relayUrl)) throw new KaiError('malformed', 'the relay address in the link is not a ws:// or wss:// URL')
  return payload
}

/**
 * Everything a link carries checked before it is used: the token's
 * signature and expiry, and that the invite secret is the one the token
 * names. A link that fails here has spent nothing at the relay.
 */
export async function checkResumeLink(payload: ResumeLinkPayload, verifier: SignatureVerifier, now: number): Promise<NobleDeviceKey> {
  await verifyHandoffToken(payload.token, verifier, { now })
  const invite = await NobleDeviceKey.fromSecret(payload.inviteSecret)
  if (!equalBytes(invite.publicKey, payload.token.invite)) {
    throw new KaiError('bad_signature', 'the invite secret in the link is not the one its token names; the link was changed')
  }
  return invite
}

function isRelayUrl(text: string): boolean {
  try {
    const url = new URL(text)
    return (url.protocol === 'ws:' || url.protocol === 'wss:') && url.hostname !== ''
  } catch {
    return false
  }
}
