import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { KaiError } from '@kai-sync/model'
import { concatBytes, fromBase64Url, randomBytes, toBase64Url, utf8 } from './bytes'
import type { DeviceKey, SignatureVerifier } from './ed25519'
import { KEY_BYTES } from './envelope'

// A capability: a device's signed request to open one relay room, for a
// short time, once. It travels as a URL query parameter (base64url), the
// only credential channel the stock y-websocket provider has, so it is a
// secret: whoever holds it may connect once until it expires.
//
//   magic "KSC" | version u8 | room varString | device 32B
//   | issuedAt varUint | expiresAt varUint | nonce 16B | signature 64B

const MAGIC = [0x4b, 0x53, 0x43] // "KSC"
const FORMAT = 1
const SIGNING_DOMAIN = utf8('kai-sync/capability/v1\0')
const SIGNATURE_BYTES = 64
export const CAPABILITY_NONCE_BYTES = 16
const MAX_ROOM = 200
/** The URL parameter a capability travels in. */
export const CAPABILITY_PARAM = 'cap'
/** How long a capability is valid when the signer does not say (60 s: enough to connect). */
export const DEFAULT_CAPABILITY_TTL_MS = 60_000

export interface Capability {
  /** The relay room: a session id. */
  readonly room: string
  /** The signing device's Ed25519 public key. */
  readonly device: Uint8Array
  readonly issuedAt: number
  readonly expiresAt: number
  /** Random; a relay accepts each nonce once. */
  readonly nonce: Uint8Array
  readonly signature: Uint8Array
  readonly bytes: Uint8Array
}

function encodeBody(room: string, device: Uint8Array, issuedAt: number, expiresAt: number, nonce: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  for (const b of MAGIC) encoding.writeUint8(e, b)
  encoding.writeUint8(e, FORMAT)
  encoding.writeVarString(e, room)
  encoding.writeUint8Array(e, device)
  encoding.writeVarUint(e, issuedAt)
  encoding.writeVarUint(e, expiresAt)
  encoding.writeUint8Array(e, nonce)
  return encoding.toUint8Array(e)
}

/** Signs a capability for `room`, valid from now for `ttlMs`. */
export async function signCapability(
  input: { room: string; ttlMs?: number; now?: number; nonce?: Uint8Array },
  signer: DeviceKey,
): Promise<Capability> {
  const { room } = input
  if (room.length === 0 || room.length > MAX_ROOM) throw new KaiError('invalid_input', `a room name is 1 to ${MAX_ROOM} characters`)
  const issuedAt = input.now ?? Date.now()
  const expiresAt = issuedAt + (input.ttlMs ?? DEFAULT_CAPABILITY_TTL_MS)
  const nonce = input.nonce ?? randomBytes(CAPABILITY_NONCE_BYTES)
  if (nonce.length !== CAPABILITY_NONCE_BYTES) throw new KaiError('invalid_input', `a capability nonce is ${CAPABILITY_NONCE_BYTES} bytes`)
  const body = encodeBody(room, signer.publicKey, issuedAt, expiresAt, nonce)
  const signature = await signer.sign(concatBytes(SIGNING_DOMAIN, body))
  return { room, device: signer.publicKey, issuedAt, expiresAt, nonce, signature, bytes: concatBytes(body, signature) }
}

/** The capability as a URL parameter value. */
export function capabilityToParam(capability: Capability): string {
  return toBase64Url(capability.bytes)
}

/** Decodes a capability from its bytes or its URL form; says nothing about its validity. */
export function decodeCapability(input: Uint8Array | string): Capability {
  const bytes = typeof input === 'string' ? fromBase64Url(input) : input
  if (!bytes) throw new KaiError('malformed', 'the capability is not base64url')
  if (bytes.length < 4 || MAGIC.some((b, i) => bytes[i] !== b)) throw new KaiError('malformed', 'not a capability: the magic bytes are missing')
  if (bytes[3] !== FORMAT) throw new KaiError('unsupported_version', `capability format ${bytes[3]}; this relay reads format ${FORMAT}`)
  try {
    const d = decoding.createDecoder(bytes)
    d.pos = 4
    const room = decoding.readVarString(d)
    const device = readFixed(d, KEY_BYTES)
    const issuedAt = decoding.readVarUint(d)
    const expiresAt = decoding.readVarUint(d)
    const nonce = readFixed(d, CAPABILITY_NONCE_BYTES)
    const signature = readFixed(d, SIGNATURE_BYTES)
    if (d.pos !== bytes.length) throw new KaiError('malformed', 'bytes after the capability signature')
    if (room.length === 0 || room.length > MAX_ROOM) throw new KaiError('malformed', 'capability room name length')
    return { room, device, issuedAt, expiresAt, nonce, signature, bytes }
  } catch (e) {
    if (e instanceof KaiError) throw e
    throw new KaiError('malformed', `the capability is truncated or corrupt (${(e as Error).message})`)
  }
}

function readFixed(d: decoding.Decoder, length: number): Uint8Array {
  if (d.pos + length > d.arr.length) throw new KaiError('malformed', 'the capability is truncated')
  return decoding.readUint8Array(d, length)
}

/**
 * Throws unless the capability is for `room`, signed by its device, and
 * valid at `now`: `wrong_session`, `bad_signature` or `expired`. A relay
 * also refuses lifetimes longer than `maxLifetimeMs`, so the nonces it must
 * remember stay few. Whether the nonce was seen before is the caller's.
 */
export async function verifyCapability(
  capability: Capability,
  verifier: SignatureVerifier,
  options: { room: string; now?: number | undefined; maxLifetimeMs?: number },
): Promise<void> {
  const now = options.now ?? Date.now()
  if (capability.room !== options.room) throw new KaiError('wrong_session', 'the capability was signed for another room')
  const body = capability.bytes.subarray(0, capability.bytes.length - SIGNATURE_BYTES)
  if (!(await verifier.verify(capability.device, concatBytes(SIGNING_DOMAIN, body), capability.signature))) {
    throw new KaiError('bad_signature', 'the capability signature does not verify')
  }
  if (capability.expiresAt <= now) throw new KaiError('expired', 'the capability has expired; sign a new one')
  if (capability.issuedAt > now + CLOCK_SKEW_MS) throw new KaiError('expired', 'the capability is issued in the future; check this device\'s clock')
  const max = options.maxLifetimeMs ?? 10 * 60_000
  if (capability.expiresAt - capability.issuedAt > max) {
    throw new KaiError('expired', `the capability is valid for longer than this relay allows (${Math.round(max / 1000)} s)`)
  }
}

/** How far ahead of the relay's clock a device's clock may run. */
const CLOCK_SKEW_MS = 60_000
