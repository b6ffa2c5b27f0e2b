import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { KaiError } from '@kai-sync/model'
import { concatBytes, utf8 } from './bytes'
import type { DeviceKey, SignatureVerifier } from './ed25519'
import { KEY_BYTES } from './envelope'
import type { SessionKey } from './session-key'
import { SIGNATURE_BYTES, decodeFormat, hasMagic, readFixed, signedPart, writePrelude, type BinaryFormat } from './format'

// Box keys and key grants: how a new epoch's session key reaches exactly
// the devices that should have it. Each device holds an X25519 key pair
// (its "box"), published in its roster entry. A grant wraps a session key
// for one device: ECDH between a fresh ephemeral key and the device's box,
// HKDF-SHA-256, AES-256-GCM; the granting device signs the whole grant.
//
//   magic "KSG" | version u8 | session varString | epoch varUint
//   | recipient 32B (Ed25519) | recipientBox 32B | ephemeral 32B | iv 12B
//   | wrapped varUint8Array | issuer 32B | issuedAt varUint | signature 64B

const FORMAT: BinaryFormat = { magic: [0x4b, 0x53, 0x47], version: 1, what: 'key grant' } // "KSG"
const IV_BYTES = 12
const HKDF_INFO = utf8('kai-sync/key-grant/v1\0')

function subtle(): SubtleCrypto {
  return globalThis.crypto.subtle
}

/** A device's X25519 key pair, for receiving session keys. */
export class BoxKey {
  private constructor(
    readonly keyPair: CryptoKeyPair,
    readonly publicKey: Uint8Array,
  ) {}

  static async generate(options: { extractable?: boolean } = {}): Promise<BoxKey> {
    const pair = (await subtle().generateKey({ name: 'X25519' }, options.extractable ?? false, ['deriveBits'])) as CryptoKeyPair
    return BoxKey.fromKeyPair(pair)
  }

  static async fromKeyPair(pair: CryptoKeyPair): Promise<BoxKey> {
    return new BoxKey(pair, new Uint8Array(await subtle().exportKey('raw', pair.publicKey)))
  }

  /** Imports a PKCS#8 private key (from a key file) as non-extractable. */
  static async fromPkcs8(pkcs8: Uint8Array, publicKey: Uint8Array): Promise<BoxKey> {
    const privateKey = await subtle().importKey('pkcs8', pkcs8 as BufferSource, { name: 'X25519' }, false, ['deriveBits'])
    const pub = await subtle().importKey('raw', publicKey as BufferSource, { name: 'X25519' }, true, [])
    return new BoxKey({ privateKey, publicKey: pub }, publicKey.slice())
  }

  async exportPkcs8(): Promise<Uint8Array> {
    return new Uint8Array(await subtle().exportKey('pkcs8', this.keyPair.privateKey))
  }
}

async function wrappingKey(privateKey: CryptoKey, peer: Uint8Array, salt: Uint8Array, context: Uint8Array, usage: KeyUsage): Promise<CryptoKey> {
  const peerKey = await subtle().importKey('raw', peer as BufferSource, { name: 'X25519' }, false, [])
  const shared = await subtle().deriveBits({ name: 'X25519', public: peerKey }, privateKey, 256)
  const hkdf = await subtle().importKey('raw', shared, 'HKDF', false, ['deriveKey'])
  return subtle().deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: salt as BufferSource, info: concatBytes(HKDF_INFO, context) as BufferSource },
    hkdf,
    { name: 'AES-GCM', length: 256 },
    false,
    [usage],
  )
}

export interface KeyGrant {
  sessionId: string
  epoch: number
  /** The device the key is for (its Ed25519 key) and its box. */
  recipient: Uint8Array
  recipientBox: Uint8Array
  ephemeral: Uint8Array
  iv: Uint8Array
  wrapped: Uint8Array
  issuer: Uint8Array
  issuedAt: number
  signature: Uint8Array
  bytes: Uint8Array
}

/** Binds the wrapped key to its session, epoch and recipient. */
function grantContext(sessionId: string, epoch: number, recipient: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarString(e, sessionId)
  encoding.writeVarUint(e, epoch)
  encoding.writeUint8Array(e, recipient)
  return encoding.toUint8Array(e)
}

/** Wraps `key` (which must be extractable) for one device and signs the grant. */
export async function grantKey(input: {
  sessionId: string
  key: SessionKey
  recipient: Uint8Array
  recipientBox: Uint8Array
  issuer: DeviceKey
  issuedAt?: number
}): Promise<KeyGrant> {
  if (input.recipient.length !== KEY_BYTES || input.recipientBox.length !== KEY_BYTES) {
    throw new KaiError('invalid_input', 'a grant needs the recipient\'s 32-byte device and box keys')
  }
  const ephemeral = (await subtle().generateKey({ name: 'X25519' }, true, ['deriveBits'])) as CryptoKeyPair
  const ephemeralPub = new Uint8Array(await subtle().exportKey('raw', ephemeral.publicKey))
  const context = grantContext(input.sessionId, input.key.epoch, input.recipient)
  const wrapKey = await wrappingKey(ephemeral.privateKey, input.recipientBox, concatBytes(ephemeralPub, input.recipientBox), context, 'encrypt')
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(IV_BYTES))
  const raw = await input.key.exportRaw()
  const wrapped = new Uint8Array(await subtle().encrypt({ name: 'AES-GCM', iv, additionalData: context as BufferSource }, wrapKey, raw as BufferSource))
  raw.fill(0)
  const e = encoding.createEncoder()
  writePrelude(e, FORMAT)
  encoding.writeVarString(e, input.sessionId)
  encoding.writeVarUint(e, input.key.epoch)
  encoding.writeUint8Array(e, input.recipient)
  encoding.writeUint8Array(e, input.recipientBox)
  encoding.writeUint8Array(e, ephemeralPub)
  encoding.writeUint8Array(e, iv)
  encoding.writeVarUint8Array(e, wrapped)
  encoding.writeUint8Array(e, input.issuer.publicKey)
  encoding.writeVarUint(e, input.issuedAt ?? Date.now())
  const body = encoding.toUint8Array(e)
  const signature = await input.issuer.sign(body)
  return decodeKeyGrant(concatBytes(body, signature))
}

export function isKeyGrantBytes(bytes: Uint8Array): boolean {
  return hasMagic(bytes, FORMAT)
}

export function decodeKeyGrant(bytes: Uint8Array): KeyGrant {
  return decodeFormat(bytes, FORMAT, (d) => {
    const sessionId = decoding.readVarString(d)
    const epoch = decoding.readVarUint(d)
    const recipient = readFixed(d, KEY_BYTES)
    const recipientBox = readFixed(d, KEY_BYTES)
    const ephemeral = readFixed(d, KEY_BYTES)
    const iv = readFixed(d, IV_BYTES)
    const wrapped = decoding.readVarUint8Array(d)
    const issuer = readFixed(d, KEY_BYTES)
    const issuedAt = decoding.readVarUint(d)
    const signature = readFixed(d, SIGNATURE_BYTES)
    return { sessionId, epoch, recipient, recipientBox, ephemeral, iv, wrapped, issuer, issuedAt, signature, bytes }
  })
}

/** Throws `bad_signature` unless the grant's issuer signed it. */
export async function verifyKeyGrant(grant: KeyGrant, verifier: SignatureVerifier): Promise<void> {
  if (!(await verifier.verify(grant.issuer, signedPart(grant.bytes), grant.signature))) {
    throw new KaiError('bad_signature', 'key grant')
  }
}

/** Unwraps a grant addressed to this device's box; returns the raw session key. */
export async function openKeyGrant(grant: KeyGrant, box: BoxKey): Promise<Uint8Array> {
  const context = grantContext(grant.sessionId, grant.epoch, grant.recipient)
  try {
    const unwrapKey = await wrappingKey(box.keyPair.privateKey, grant.ephemeral, concatBytes(grant.ephemeral, grant.recipientBox), context, 'decrypt')
    return new Uint8Array(await subtle().decrypt({ name: 'AES-GCM', iv: grant.iv as BufferSource, additionalData: context as BufferSource }, unwrapKey, grant.wrapped as BufferSource))
  } catch (cause) {
    throw new KaiError('decrypt_failed', `the grant of epoch ${grant.epoch} is not for this device's box`, { cause })
  }
}
