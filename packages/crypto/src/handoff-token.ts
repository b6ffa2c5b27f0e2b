import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { KaiError, MODES, TRANSFER_TYPES, type Mode, type TransferType } from '@kai-sync/model'
import { concatBytes, randomBytes, toBase64Url, utf8 } from './bytes'
import type { DeviceKey, SignatureVerifier } from './ed25519'
import { KEY_BYTES } from './envelope'
import { SIGNATURE_BYTES, decodeFormat, readFixed, signedPart, writePrelude, type BinaryFormat } from './format'
import { HANDOFF_TTL_MS } from './handoff-ttl'

export { HANDOFF_TTL_MS }

// A handoff token: the issuing device's signed statement that whoever holds
// the invite key it names may join the session for this transfer, until it
// expires. It carries no secret: the relay sees it when it burns it. The
// invite key's secret and the session keys travel beside it only in the
// resume link's fragment.
//
//   magic "KSH" | version u8 | id 16B | session varString | source mode u8
//   | target mode u8 | transfer u8 | issuer 32B | invite 32B
//   | issuedAt varUint | expiresAt varUint | signature 64B

const FORMAT: BinaryFormat = { magic: [0x4b, 0x53, 0x48], version: 1, what: 'handoff token' } // "KSH"
const ID_BYTES = 16

export interface HandoffTokenFields {
  /** Unique per token: what the relay burns. */
  id: Uint8Array
  sessionId: string
  sourceMode: Mode
  targetMode: Mode
  transfer: TransferType
  issuer: Uint8Array
  /** The one-time invite key the target signs its roster entry with. */
  invite: Uint8Array
  issuedAt: number
  expiresAt: number
}

export interface HandoffToken extends HandoffTokenFields {
  readonly signature: Uint8Array
  readonly bytes: Uint8Array
}

export async function signHandoffToken(
  fields: Omit<HandoffTokenFields, 'id' | 'issuer' | 'issuedAt' | 'expiresAt'> & { issuedAt?: number },
  issuer: DeviceKey,
): Promise<HandoffToken> {
  const issuedAt = fields.issuedAt ?? Date.now()
  const full: HandoffTokenFields = { ...fields, id: randomBytes(ID_BYTES), issuer: issuer.publicKey, issuedAt, expiresAt: issuedAt + HANDOFF_TTL_MS }
  if (full.invite.length !== KEY_BYTES) throw new KaiError('invalid_input', 'the invite key is 32 bytes')
  const e = encoding.createEncoder()
  writePrelude(e, FORMAT)
  encoding.writeUint8Array(e, full.id)
  encoding.writeVarString(e, full.sessionId)
  encoding.writeUint8(e, MODES.indexOf(full.sourceMode))
  encoding.writeUint8(e, MODES.indexOf(full.targetMode))
  encoding.writeUint8(e, TRANSFER_TYPES.indexOf(full.transfer))
  encoding.writeUint8Array(e, full.issuer)
  encoding.writeUint8Array(e, full.invite)
  encoding.writeVarUint(e, full.issuedAt)
  encoding.writeVarUint(e, full.expiresAt)
  const body = encoding.toUint8Array(e)
  const signature = await issuer.sign(body)
  return { ...full, signature, bytes: concatBytes(body, signature) }
}

export function decodeHandoffToken(bytes: Uint8Array): HandoffToken {
  return decodeFormat(bytes, FORMAT, (d) => {
    const id = readFixed(d, ID_BYTES)
    const sessionId = decoding.readVarString(d)
    const sourceMode = MODES[decoding.readUint8(d)]
    const targetMode = MODES[decoding.readUint8(d)]
    const transfer = TRANSFER_TYPES[decoding.readUint8(d)]
    if (!sourceMode || !targetMode || !transfer) throw new KaiError('malformed', 'unknown mode or transfer type')
    const issuer = readFixed(d, KEY_BYTES)
    const invite = readFixed(d, KEY_BYTES)
    const issuedAt = decoding.readVarUint(d)
    const expiresAt = decoding.readVarUint(d)
    const signature = readFixed(d, SIGNATURE_BYTES)
    return { id, sessionId, sourceMode, targetMode, transfer, issuer, invite, issuedAt, expiresAt, signature, bytes }
  })
}

/**
 * Checks the token's signature and expiry (and, given one, its session).
 * Whether its issuer may hand the session off is the roster's to say, and
 * whether it was used already the relay's.
 */
export async function verifyHandoffToken(
  token: HandoffToken,
  verifier: SignatureVerifier,
  options: { now?: number; sessionId?: string } = {},
): Promise<void> {
  if (!(await verifier.verify(token.issuer, signedPart(token.bytes), token.signature))) {
    throw new KaiError('bad_signature', 'the handoff token was changed or forged')
  }
  if (options.sessionId !== undefined && token.sessionId !== options.sessionId) {
    throw new KaiError('wrong_session', `the token is for session ${token.sessionId.slice(0, 40)}`)
  }
  if (token.expiresAt - token.issuedAt > HANDOFF_TTL_MS) throw new KaiError('invalid_input', 'the token claims to live longer than five minutes')
  if ((options.now ?? Date.now()) > token.expiresAt) throw new KaiError('expired', 'the handoff token expired; start a new handoff')
}

/** The token's id as the relay files it. */
export function handoffTokenId(token: HandoffTokenFields): string {
  return toBase64Url(token.id)
}

// The claim a target sends when it resumes: the invite key's signature
// over the token's id and the target's own keys. Only the holder of the
// invite secret (the link's fragment) can make one, and the relay binds the
// token to exactly those keys when it burns it.
const CLAIM_DOMAIN = utf8('kai-sync handoff claim v1\0')

function claimMessage(token: HandoffTokenFields, device: Uint8Array, box: Uint8Array): Uint8Array {
  if (device.length !== KEY_BYTES || box.length !== KEY_BYTES) throw new KaiError('invalid_input', 'device and box are 32-byte keys')
  return concatBytes(CLAIM_DOMAIN, token.id, device, box)
}

/** Signs the claim of `device` (and its X25519 `box`) to the token, with the invite key the token names. */
export function signHandoffClaim(token: HandoffTokenFields, invite: DeviceKey, device: Uint8Array, box: Uint8Array): Promise<Uint8Array> {
  return invite.sign(claimMessage(token, device, box))
}

/** Checks a claim against the token's invite key; `bad_signature` if it was not made with the invite secret. */
export async function verifyHandoffClaim(
  token: HandoffTokenFields,
  claim: { device: Uint8Array; box: Uint8Array; signature: Uint8Array },
  verifier: SignatureVerifier,
): Promise<void> {
  const ok = claim.signature.length === SIGNATURE_BYTES && (await verifier.verify(token.invite, claimMessage(token, claim.device, claim.box), claim.signature))
  if (!ok) throw new KaiError('bad_signature', 'the claim is not signed with this handoff\'s invite key')
}
