import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { KaiError } from '@kai-sync/model'
import { concatBytes, equalBytes, randomBytes } from './bytes'
import type { DeviceKey, SignatureVerifier } from './ed25519'
import { KEY_BYTES, STREAM_BYTES } from './envelope'
import { SESSION_NONCE_BYTES, deriveSessionId } from './ids'
import { SIGNATURE_BYTES, decodeFormat, hasMagic, readFixed, signedPart, writePrelude, type BinaryFormat } from './format'

// A roster entry: a signed statement "in session S, device D has role R
// (version V)", issued by a device. The roster is the set of entries; who
// may issue what is decided by the engine's roster rules.
//
//   magic "KSR" | version u8 | session varString | subject 32B | role u8
//   | entry version varUint | issuer 32B | issuedAt varUint | nonce 16B
//   | label varString | box 32B | until (varUint n, n x (stream 16B, seq varUint))
//   | signature 64B

const FORMAT: BinaryFormat = { magic: [0x4b, 0x53, 0x52], version: 1, what: 'roster entry' } // "KSR"
const MAX_LABEL = 100

/**
 * Roles. The `invite_*` roles belong to one-time invite keys a handoff
 * creates: the invite key may enroll one new device (as a reader, a writer,
 * or a writer that takes over from the invite's issuer), once.
 */
export const ROLES = ['owner', 'writer', 'reader', 'removed', 'invite_reader', 'invite_writer', 'invite_takeover'] as const
export type Role = (typeof ROLES)[number]
export const INVITE_ROLES: readonly Role[] = ['invite_reader', 'invite_writer', 'invite_takeover']

export interface RosterEntryFields {
  sessionId: string
  /** The device the entry is about. */
  subject: Uint8Array
  role: Role
  /** Higher versions of a subject's entries supersede lower ones. */
  version: number
  /** The device that signed the entry. */
  issuer: Uint8Array
  issuedAt: number
  /** Genesis only: the nonce the session id derives from; zeros otherwise. */
  nonce: Uint8Array
  /** A name a person recognises the device by ("Pixel 8, side panel"). */
  label: string
  /** The subject's X25519 box key, to which session keys are granted; zeros if none. */
  box: Uint8Array
  /**
   * When the entry demotes or removes the subject: the last position of each
   * of its streams whose envelopes stay valid. Without it, a replica that
   * learned of a step-down before the subject's last writes would reject
   * writes that others applied, and the replicas would diverge.
   */
  until: StreamPosition[]
}

export interface StreamPosition {
  stream: Uint8Array
  seq: number
}

export interface RosterEntry extends RosterEntryFields {
  readonly signature: Uint8Array
  readonly bytes: Uint8Array
}

const ZERO_NONCE = new Uint8Array(SESSION_NONCE_BYTES)
export const NO_BOX = new Uint8Array(KEY_BYTES)

function encodeBody(f: RosterEntryFields): Uint8Array {
  if (f.subject.length !== KEY_BYTES || f.issuer.length !== KEY_BYTES || f.box.length !== KEY_BYTES || f.nonce.length !== SESSION_NONCE_BYTES || f.label.length > MAX_LABEL) {
    throw new KaiError('invalid_input', 'roster entry fields have the wrong sizes')
  }
  const e = encoding.createEncoder()
  writePrelude(e, FORMAT)
  encoding.writeVarString(e, f.sessionId)
  encoding.writeUint8Array(e, f.subject)
  encoding.writeUint8(e, ROLES.indexOf(f.role))
  encoding.writeVarUint(e, f.version)
  encoding.writeUint8Array(e, f.issuer)
  encoding.writeVarUint(e, f.issuedAt)
  encoding.writeUint8Array(e, f.nonce)
  encoding.writeVarString(e, f.label)
  encoding.writeUint8Array(e, f.box)
  encoding.writeVarUint(e, f.until.length)
  for (const u of f.until) {
    if (u.stream.length !== STREAM_BYTES) throw new KaiError('invalid_input', 'a stream id is 16 bytes')
    encoding.writeUint8Array(e, u.stream)
    encoding.writeVarUint(e, u.seq)
  }
  return encoding.toUint8Array(e)
}

export async function signRosterEntry(
  fields: Omit<RosterEntryFields, 'issuer' | 'nonce' | 'until' | 'box'> & { nonce?: Uint8Array; until?: StreamPosition[]; box?: Uint8Array },
  signer: DeviceKey,
): Promise<RosterEntry> {
  const full: RosterEntryFields = { ...fields, nonce: fields.nonce ?? ZERO_NONCE, until: fields.until ?? [], box: fields.box ?? NO_BOX, issuer: signer.publicKey }
  const body = encodeBody(full)
  const signature = await signer.sign(body)
  return { ...full, signature, bytes: concatBytes(body, signature) }
}

/** The first entry of a session: its owner, self-signed, naming the nonce the id derives from. */
export async function createGenesis(owner: DeviceKey, label: string, issuedAt = Date.now(), box: Uint8Array = NO_BOX): Promise<RosterEntry> {
  const nonce = randomBytes(SESSION_NONCE_BYTES)
  const sessionId = deriveSessionId(owner.publicKey, nonce)
  return signRosterEntry({ sessionId, subject: owner.publicKey, role: 'owner', version: 1, issuedAt, nonce, label, box }, owner)
}

/** True if the entry is a well-formed genesis of the session it names. */
export function isGenesis(entry: RosterEntryFields): boolean {
  return (
    entry.role === 'owner' &&
    equalBytes(entry.subject, entry.issuer) &&
    deriveSessionId(entry.issuer, entry.nonce) === entry.sessionId
  )
}

export function isRosterEntryBytes(bytes: Uint8Array): boolean {
  return hasMagic(bytes, FORMAT)
}

export function decodeRosterEntry(bytes: Uint8Array): RosterEntry {
  return decodeFormat(bytes, FORMAT, (d) => {
    const sessionId = decoding.readVarString(d)
    const subject = readFixed(d, KEY_BYTES)
    const role = ROLES[decoding.readUint8(d)]
    if (!role) throw new KaiError('malformed', 'unknown role')
    const version = decoding.readVarUint(d)
    const issuer = readFixed(d, KEY_BYTES)
    const issuedAt = decoding.readVarUint(d)
    const nonce = readFixed(d, SESSION_NONCE_BYTES)
    const label = decoding.readVarString(d)
    if (label.length > MAX_LABEL) throw new KaiError('malformed', 'label too long')
    const box = readFixed(d, KEY_BYTES)
    const until: StreamPosition[] = []
    const count = decoding.readVarUint(d)
    if (count > 4096) throw new KaiError('malformed', 'too many stream positions')
    for (let i = 0; i < count; i++) until.push({ stream: readFixed(d, STREAM_BYTES), seq: decoding.readVarUint(d) })
    const signature = readFixed(d, SIGNATURE_BYTES)
    return { sessionId, subject, role, version, issuer, issuedAt, nonce, label, box, until, signature, bytes }
  })
}

/** Throws `bad_signature` unless the entry's issuer signed it. */
export async function verifyRosterEntry(entry: RosterEntry, verifier: SignatureVerifier): Promise<void> {
  if (!(await verifier.verify(entry.issuer, signedPart(entry.bytes), entry.signature))) {
    throw new KaiError('bad_signature', 'roster entry')
  }
}
