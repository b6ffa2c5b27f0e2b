import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'
import { nodeCrypto } from './node-crypto'

// Small byte helpers shared by the envelope, roster and key code.

/**
 * SHA-256 of the parts one after another: Node's native one where it runs
 * in Node, noble's elsewhere. Parts rather than one concatenation, so a
 * hash over two fields (an envelope's header and signature, once per
 * arrival) copies nothing.
 */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  if (!nodeCrypto) {
    if (parts.length === 1) return nobleSha256(parts[0]!)
    const h = nobleSha256.create()
    for (const p of parts) h.update(p)
    return h.digest()
  }
  const h = nodeCrypto.createHash('sha256')
  for (const p of parts) h.update(p)
  const digest = h.digest()
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.length)
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}

/** Lexicographic byte order, for deterministic tie-breaks. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

export function randomBytes(length: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(length))
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const B64URL_INDEX = new Int16Array(128).fill(-1)
for (let i = 0; i < B64URL.length; i++) B64URL_INDEX[B64URL.charCodeAt(i)] = i

const B64URL_CODES = Array.from(B64URL, (c) => c.charCodeAt(0))
const ARGUMENTS_AT_ONCE = 8192

// Node's Buffer encodes natively into one flat string; elsewhere (browsers)
// the characters are collected and made into a string once. Both beat
// appending four characters at a time, whose rope of small strings must be
// flattened again when the result is hashed as a map key (relay and engine
// do that for every envelope's device, stream and signature).
const NodeBuffer = (globalThis as { Buffer?: { from(b: ArrayBufferLike, offset: number, length: number): { toString(encoding: 'base64url'): string } } }).Buffer

/** Unpadded base64url: safe in URLs, file names, map keys and room names. */
export function toBase64Url(bytes: Uint8Array): string {
  if (NodeBuffer) return NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64url')
  return toBase64UrlPortable(bytes)
}

/** toBase64Url without Buffer (exported for its test, which compares the two). */
export function toBase64UrlPortable(bytes: Uint8Array): string {
  const out = new Array<number>(Math.ceil((bytes.length * 4) / 3))
  let o = 0
  let i = 0
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!
    out[o++] = B64URL_CODES[n >> 18]!
    out[o++] = B64URL_CODES[(n >> 12) & 63]!
    out[o++] = B64URL_CODES[(n >> 6) & 63]!
    out[o++] = B64URL_CODES[n & 63]!
  }
  const rest = bytes.length - i
  if (rest > 0) {
    const n = (bytes[i]! << 16) | (rest === 2 ? bytes[i + 1]! << 8 : 0)
    out[o++] = B64URL_CODES[n >> 18]!
    out[o++] = B64URL_CODES[(n >> 12) & 63]!
    if (rest === 2) out[o++] = B64URL_CODES[(n >> 6) & 63]!
  }
  if (o <= ARGUMENTS_AT_ONCE) return String.fromCharCode.apply(null, out)
  // In chunks: an argument list has a length limit.
  let text = ''
  for (let at = 0; at < o; at += ARGUMENTS_AT_ONCE) text += String.fromCharCode.apply(null, out.slice(at, at + ARGUMENTS_AT_ONCE))
  return text
}

/** Decodes unpadded base64url; returns null for anything else. */
export function fromBase64Url(text: string): Uint8Array | null {
  if (text.length % 4 === 1) return null
  const out = new Uint8Array(Math.floor((text.length * 3) / 4))
  let bits = 0
  let value = 0
  let at = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    const v = c < 128 ? B64URL_INDEX[c]! : -1
    if (v < 0) return null
    value = (value << 6) | v
    bits += 6
    if (bits >= 8) {
      bits -= 8
      out[at++] = (value >> bits) & 0xff
    }
  }
  // Leftover bits must be zero, so every byte string has one encoding.
  if ((value & ((1 << bits) - 1)) !== 0) return null
  return out
}

export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text)
}
