import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { KaiError } from '@kai-sync/model'

// The shared frame of every binary object kai-sync signs: three magic bytes
// naming the kind (so one kind's bytes can never verify as another's), a
// format version, then the fields, then (for signed ones) a 64-byte
// signature over everything before it.

export interface BinaryFormat {
  /** Three ASCII bytes, e.g. "KSE" for envelopes. */
  readonly magic: readonly [number, number, number]
  readonly version: number
  /** What a person calls it, for error messages. */
  readonly what: string
}

export const SIGNATURE_BYTES = 64

export function writePrelude(e: encoding.Encoder, format: BinaryFormat): void {
  for (const b of format.magic) encoding.writeUint8(e, b)
  encoding.writeUint8(e, format.version)
}

export function hasMagic(bytes: Uint8Array, format: BinaryFormat): boolean {
  return bytes.length > format.magic.length && format.magic.every((b, i) => bytes[i] === b)
}

/**
 * Decodes `bytes` as `format`: checks magic and version, runs `read` on a
 * decoder past them, and insists `read` consumed every byte. Anything that
 * goes wrong is `malformed` (or `unsupported_version`), never a crash.
 */
export function decodeFormat<T>(bytes: Uint8Array, format: BinaryFormat, read: (d: decoding.Decoder) => T): T {
  if (!hasMagic(bytes, format)) throw new KaiError('malformed', `not a ${format.what}: the magic bytes are missing`)
  if (bytes[format.magic.length] !== format.version) {
    throw new KaiError('unsupported_version', `${format.what} format ${bytes[format.magic.length]}; this device reads format ${format.version}`)
  }
  try {
    const d = decoding.createDecoder(bytes)
    d.pos = format.magic.length + 1
    const value = read(d)
    if (d.pos !== bytes.length) throw new KaiError('malformed', `${bytes.length - d.pos} bytes after the end of the ${format.what}`)
    return value
  } catch (e) {
    if (e instanceof KaiError) throw e
    throw new KaiError('malformed', `the ${format.what} is truncated or corrupt (${(e as Error).message})`)
  }
}

/** Reads exactly `length` bytes, or fails as truncated. */
export function readFixed(d: decoding.Decoder, length: number): Uint8Array {
  if (d.pos + length > d.arr.length) throw new KaiError('malformed', 'truncated')
  return decoding.readUint8Array(d, length)
}

/** The bytes a trailing signature covers: everything before it. */
export function signedPart(bytes: Uint8Array): Uint8Array {
  return bytes.subarray(0, bytes.length - SIGNATURE_BYTES)
}
