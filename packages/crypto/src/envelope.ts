import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { KaiError } from '@kai-sync/model'
import { concatBytes, sha256 } from './bytes'
import type { DeviceKey, SignatureVerifier } from './ed25519'
import { IV_BYTES, type SessionKey, type SessionKeyring } from './session-key'
import { SIGNATURE_BYTES, decodeFormat, readFixed, signedPart, writePrelude, type BinaryFormat } from './format'

// The envelope: one sealed batch of session-doc updates.
//
//   magic "KSE" | version u8 | kind u8 | session varString | device 32B
//   | stream 16B | seq varUint | prev 32B | epoch varUint | createdAt varUint
//   | clientIds (varUint n, n x varUint) | covers (varUint n, n x cursor: device 32B | stream 16B | seq varUint | hash 32B)
//   -- end of header: the AEAD associated data --
//   | iv 12B | ciphertext varUint8Array | signature 64B
//
// The signature covers every byte before it: header, IV and ciphertext with
// its length. The magic and version open those bytes, so they cannot be
// mistaken for a roster entry ("KSR") or a capability, and verifying needs
// no copy. The hash that chains a stream is SHA-256 over the header and
// the signature: the signature already binds IV and ciphertext, and hashing
// it instead of a multi-megabyte snapshot keeps the hash cheap.

export const ENVELOPE_VERSION = 1
const FORMAT: BinaryFormat = { magic: [0x4b, 0x53, 0x45], version: ENVELOPE_VERSION, what: 'envelope' } // "KSE"
export const KEY_BYTES = 32
export const STREAM_BYTES = 16
export const HASH_BYTES = 32
const MAX_SESSION_ID = 200
const MAX_LIST = 1 << 16

export const ENVELOPE_KINDS = ['update', 'snapshot', 'control', 'presence'] as const
export type EnvelopeKind = (typeof ENVELOPE_KINDS)[number]

/**
 * Where one stream stood: its last sequence number and that envelope's hash.
 * A stream is its device's (chains are kept per device and stream), so a
 * cursor names both.
 */
export interface StreamCursor {
  device: Uint8Array
  stream: Uint8Array
  seq: number
  hash: Uint8Array
}

export interface EnvelopeHeader {
  kind: EnvelopeKind
  sessionId: string
  /** The signing device's Ed25519 public key. */
  device: Uint8Array
  /** One stream per JS context; seq and prev chain its envelopes. */
  stream: Uint8Array
  seq: number
  prev: Uint8Array
  epoch: number
  createdAt: number
  /** The Yjs client ids whose structs the update carries. */
  clientIds: number[]
  /** Snapshots only: the stream positions whose envelopes the snapshot holds. */
  covers: StreamCursor[]
}

export interface Envelope {
  readonly header: EnvelopeHeader
  /** The encoded header, which is also the AEAD associated data. */
  readonly headerBytes: Uint8Array
  readonly iv: Uint8Array
  readonly ciphertext: Uint8Array
  readonly signature: Uint8Array
  /** The whole envelope as stored in the wire doc. */
  readonly bytes: Uint8Array
  readonly hash: Uint8Array
}

export const ZERO_HASH = new Uint8Array(HASH_BYTES)

export function encodeHeader(h: EnvelopeHeader): Uint8Array {
  checkHeader(h)
  const e = encoding.createEncoder()
  writePrelude(e, FORMAT)
  encoding.writeUint8(e, ENVELOPE_KINDS.indexOf(h.kind))
  encoding.writeVarString(e, h.sessionId)
  encoding.writeUint8Array(e, h.device)
  encoding.writeUint8Array(e, h.stream)
  encoding.writeVarUint(e, h.seq)
  encoding.writeUint8Array(e, h.prev)
  encoding.writeVarUint(e, h.epoch)
  encoding.writeVarUint(e, h.createdAt)
  encoding.writeVarUint(e, h.clientIds.length)
  for (const id of h.clientIds) encoding.writeVarUint(e, id)
  encoding.writeVarUint(e, h.covers.length)
  for (const c of h.covers) {
    encoding.writeUint8Array(e, c.device)
    encoding.writeUint8Array(e, c.stream)
    encoding.writeVarUint(e, c.seq)
    encoding.writeUint8Array(e, c.hash)
  }
  return encoding.toUint8Array(e)
}

function checkHeader(h: EnvelopeHeader): void {
  const fixed = h.device.length === KEY_BYTES && h.stream.length === STREAM_BYTES && h.prev.length === HASH_BYTES
  const sized = h.sessionId.length > 0 && h.sessionId.length <= MAX_SESSION_ID && h.clientIds.length <= MAX_LIST && h.covers.length <= MAX_LIST
  const cursors = h.covers.every((c) => c.device.length === KEY_BYTES && c.stream.length === STREAM_BYTES && c.hash.length === HASH_BYTES)
  if (!fixed || !sized || !cursors || !ENVELOPE_KINDS.includes(h.kind)) {
    throw new KaiError('invalid_input', 'envelope header fields have the wrong sizes')
  }
}

function envelopeHash(headerBytes: Uint8Array, signature: Uint8Array): Uint8Array {
  return sha256(headerBytes, signature)
}


/** Encrypts `plaintext` under the key of the header's epoch and signs the result. */
export async function sealEnvelope(input: {
  header: Omit<EnvelopeHeader, 'device' | 'epoch'>
  plaintext: Uint8Array
  key: SessionKey
  signer: DeviceKey
}): Promise<Envelope> {
  const header: EnvelopeHeader = { ...input.header, device: input.signer.publicKey, epoch: input.key.epoch }
  const headerBytes = encodeHeader(header)
  const { iv, ciphertext } = await input.key.encrypt(input.plaintext, headerBytes)
  const e = encoding.createEncoder()
  encoding.writeUint8Array(e, headerBytes)
  encoding.writeUint8Array(e, iv)
  encoding.writeVarUint8Array(e, ciphertext)
  const body = encoding.toUint8Array(e)
  const signature = await input.signer.sign(body)
  const bytes = concatBytes(body, signature)
  return new LazyHashEnvelope(header, headerBytes, iv, ciphertext, signature, bytes)
}

/**
 * An envelope whose chain hash is computed on first use: a relay never
 * needs it, and a sealing engine reads it only after the envelope is on its
 * way. A class, so the getter lives on the prototype: a relay decodes one
 * of these per envelope it checks.
 */
class LazyHashEnvelope implements Envelope {
  private computed: Uint8Array | undefined

  constructor(
    readonly header: EnvelopeHeader,
    readonly headerBytes: Uint8Array,
    readonly iv: Uint8Array,
    readonly ciphertext: Uint8Array,
    readonly signature: Uint8Array,
    readonly bytes: Uint8Array,
  ) {}

  get hash(): Uint8Array {
    return (this.computed ??= envelopeHash(this.headerBytes, this.signature))
  }
}

/** Decodes an envelope's structure; says nothing about its authenticity. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  return decodeFormat(bytes, FORMAT, (d) => {
    const kind = ENVELOPE_KINDS[decoding.readUint8(d)]
    if (!kind) throw new KaiError('malformed', 'unknown envelope kind')
    const sessionId = decoding.readVarString(d)
    if (sessionId.length === 0 || sessionId.length > MAX_SESSION_ID) throw new KaiError('malformed', 'session id length')
    const device = readFixed(d, KEY_BYTES)
    const stream = readFixed(d, STREAM_BYTES)
    const seq = decoding.readVarUint(d)
    const prev = readFixed(d, HASH_BYTES)
    const epoch = decoding.readVarUint(d)
    const createdAt = decoding.readVarUint(d)
    const clientIds: number[] = []
    for (let n = readCount(d); n > 0; n--) clientIds.push(decoding.readVarUint(d))
    const covers: StreamCursor[] = []
    for (let n = readCount(d); n > 0; n--) {
      covers.push({ device: readFixed(d, KEY_BYTES), stream: readFixed(d, STREAM_BYTES), seq: decoding.readVarUint(d), hash: readFixed(d, HASH_BYTES) })
    }
    const headerBytes = bytes.subarray(0, d.pos)
    const iv = readFixed(d, IV_BYTES)
    const ciphertext = decoding.readVarUint8Array(d)
    const signature = readFixed(d, SIGNATURE_BYTES)
    const header: EnvelopeHeader = { kind, sessionId, device, stream, seq, prev, epoch, createdAt, clientIds, covers }
    return new LazyHashEnvelope(header, headerBytes, iv, ciphertext, signature, bytes)
  })
}

function readCount(d: decoding.Decoder): number {
  const n = decoding.readVarUint(d)
  if (n > MAX_LIST) throw new KaiError('malformed', `a list of ${n} entries is over the limit of ${MAX_LIST}`)
  return n
}

/** Throws `bad_signature` unless the header's device signed the envelope. */
export async function verifyEnvelope(envelope: Envelope, verifier: SignatureVerifier): Promise<void> {
  const ok = await verifier.verify(envelope.header.device, signedPart(envelope.bytes), envelope.signature)
  if (!ok) throw new KaiError('bad_signature', `envelope seq ${envelope.header.seq} of its stream`)
}

/** Decrypts a verified envelope with the key of its epoch. */
export async function openEnvelope(envelope: Envelope, keys: SessionKeyring): Promise<Uint8Array> {
  const key = keys.get(envelope.header.epoch)
  if (!key) throw new KaiError('wrong_epoch', `no key for epoch ${envelope.header.epoch}; this device holds ${keys.epochs().join(', ') || 'none'}`)
  return key.decrypt(envelope.iv, envelope.ciphertext, envelope.headerBytes)
}
