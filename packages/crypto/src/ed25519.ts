import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import type { KeyObject } from 'node:crypto'
import { concatBytes, toBase64Url } from './bytes'
import { nodeCrypto } from './node-crypto'

// Ed25519 with one acceptance rule on every platform. RFC 8032 lets a
// verifier check either the cofactored or the cofactorless equation, and
// implementations differ on non-canonical encodings; two replicas that
// disagree on one signature would diverge for good. So every verifier here
// accepts exactly when:
//   - S < L (canonical scalar),
//   - A and R are canonical encodings of curve points,
//   - neither A nor R is of small order,
//   - [S]B = R + [k]A (cofactorless, as OpenSSL and BoringSSL check it).
// This is also exactly libsodium's rule. The native paths (OpenSSL in
// Node, BoringSSL in Chromium, libsodium in the relay) get the scalar and
// small-order checks as pre-checks; the portable path does all of it with
// noble's point arithmetic, since noble's own `verify` checks the cofactored
// equation. An honest R = [r]B is never of small order.

const L = 2n ** 252n + 27742317777372353535851937790883648493n
const SIGNATURE_BYTES = 64
const KEY_BYTES = 32

function numberLE(bytes: Uint8Array): bigint {
  let n = 0n
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!)
  return n
}

/** Decodes a canonical point, or returns null. */
function decodePoint(bytes: Uint8Array): ed.Point | null {
  try {
    return ed.Point.fromBytes(bytes, false)
  } catch {
    return null
  }
}

// Decoding a key costs a square root; signers are few, so remember them.
const acceptedKeys = new Set<string>()
const MAX_REMEMBERED_KEYS = 4096

/** A key is acceptable if it is a canonical point of large order. */
export function isAcceptablePublicKey(publicKey: Uint8Array): boolean {
  if (publicKey.length !== KEY_BYTES) return false
  const id = toBase64Url(publicKey)
  if (acceptedKeys.has(id)) return true
  const point = decodePoint(publicKey)
  if (!point || point.isSmallOrder()) return false
  if (acceptedKeys.size >= MAX_REMEMBERED_KEYS) acceptedKeys.clear()
  acceptedKeys.add(id)
  return true
}

// The canonical encodings of the eight points of small order; any other
// encoding of them fails the canonical-encoding check anyway.
const SMALL_ORDER_ENCODINGS = [
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '0000000000000000000000000000000000000000000000000000000000000000',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  '0000000000000000000000000000000000000000000000000000000000000080',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
].map((hex) => Uint8Array.from(hex.match(/../g)!, (b) => Number.parseInt(b, 16)))

// Both run for every signature a relay checks, so they compare bytes
// rather than convert to bigint or allocate.
function isSmallOrderEncoding(bytes: Uint8Array): boolean {
  for (const e of SMALL_ORDER_ENCODINGS) {
    if (e[0] !== bytes[0]) continue
    let i = 1
    while (i < 32 && e[i] === bytes[i]) i++
    if (i === 32) return true
  }
  return false
}

const L_BYTES = Uint8Array.from({ length: 32 }, (_, i) => Number((L >> BigInt(8 * i)) & 0xffn))

/** S < L, comparing little-endian bytes from the most significant down. */
function isCanonicalScalar(s: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) if (s[i] !== L_BYTES[i]) return s[i]! < L_BYTES[i]!
  return false
}

/**
 * The checks every verifier makes before the curve equation: canonical S,
 * R not of small order, a canonical key of large order. Exported so a
 * platform-specific verifier (the relay's) keeps the one acceptance rule.
 */
export function passesEd25519Prechecks(publicKey: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_BYTES) return false
  if (!isCanonicalScalar(signature.subarray(32))) return false
  if (isSmallOrderEncoding(signature.subarray(0, 32))) return false
  return isAcceptablePublicKey(publicKey)
}

export interface SignatureVerifier {
  readonly name: 'webcrypto' | 'noble' | 'node' | 'libsodium'
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>
}

/** The portable verifier: pure JavaScript, same rule as the WebCrypto one. */
export const nobleVerifier: SignatureVerifier = {
  name: 'noble',
  async verify(publicKey, message, signature) {
    return verifyPortable(publicKey, message, signature)
  },
}

export function verifyPortable(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!passesEd25519Prechecks(publicKey, signature)) return false
  const r = signature.subarray(0, 32)
  const A = decodePoint(publicKey)
  const R = decodePoint(r)
  if (!A || !R) return false
  const s = numberLE(signature.subarray(32))
  const k = numberLE(sha512(concatBytes(r, publicKey, message))) % L
  const SB = ed.Point.BASE.multiply(s, false)
  return R.add(A.multiply(k, false)).equals(SB)
}

function subtle(): SubtleCrypto {
  return globalThis.crypto.subtle
}

/** Verifies with the platform's native Ed25519 through WebCrypto. */
export function webCryptoVerifier(): SignatureVerifier {
  // An import in flight, then the key itself, so a known signer's check
  // starts in the same task: an await on the import would queue it behind
  // everything else that task does. A failed import is forgotten.
  const keys = new Map<string, CryptoKey | Promise<CryptoKey>>()
  const keyFor = (publicKey: Uint8Array): CryptoKey | Promise<CryptoKey> => {
    const id = toBase64Url(publicKey)
    const known = keys.get(id)
    if (known) return known
    if (keys.size >= MAX_REMEMBERED_KEYS) keys.clear()
    const importing = subtle().importKey('raw', publicKey as BufferSource, { name: 'Ed25519' }, false, ['verify'])
    keys.set(id, importing)
    const settle = (key?: CryptoKey) => {
      if (keys.get(id) !== importing) return
      if (key) keys.set(id, key)
      else keys.delete(id)
    }
    importing.then(settle, () => settle())
    return importing
  }
  const check = (key: CryptoKey, message: Uint8Array, signature: Uint8Array) =>
    subtle().verify({ name: 'Ed25519' }, key, signature as BufferSource, message as BufferSource)
  return {
    name: 'webcrypto',
    async verify(publicKey, message, signature) {
      if (!passesEd25519Prechecks(publicKey, signature)) return false
      // Non-canonical R is rejected by the native check itself: it compares
      // the recomputed R's canonical encoding with R's bytes.
      const key = keyFor(publicKey)
      return key instanceof Promise ? check(await key, message, signature) : check(key, message, signature)
    },
  }
}

let webCryptoSupport: Promise<boolean> | undefined

/** True where WebCrypto implements Ed25519 (Node 20, current Chromium). */
export function hasWebCryptoEd25519(): Promise<boolean> {
  webCryptoSupport ??= (async () => {
    try {
      const pair = (await subtle().generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as CryptoKeyPair
      const message = new Uint8Array([1])
      const signature = new Uint8Array(await subtle().sign({ name: 'Ed25519' }, pair.privateKey, message))
      return await subtle().verify({ name: 'Ed25519' }, pair.publicKey, signature, message)
    } catch {
      return false
    }
  })()
  return webCryptoSupport
}

// --- device keys -----------------------------------------------------------

/** A device's signing key. The private half never leaves it. */
export interface DeviceKey {
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array
  sign(message: Uint8Array): Promise<Uint8Array>
}

/**
 * A WebCrypto key pair. Generated non-extractable by default, so it can be
 * stored in IndexedDB (structured clone keeps CryptoKeys) without the
 * private key ever being readable by script.
 */
export class WebCryptoDeviceKey implements DeviceKey {
  private nodeKey: KeyObject | undefined

  private constructor(
    readonly keyPair: CryptoKeyPair,
    readonly publicKey: Uint8Array,
  ) {}

  static async generate(options: { extractable?: boolean } = {}): Promise<WebCryptoDeviceKey> {
    const pair = (await subtle().generateKey({ name: 'Ed25519' }, options.extractable ?? false, ['sign', 'verify'])) as CryptoKeyPair
    return WebCryptoDeviceKey.fromKeyPair(pair)
  }

  /** A key pair as stored, e.g. read back from IndexedDB. */
  static async fromKeyPair(pair: CryptoKeyPair): Promise<WebCryptoDeviceKey> {
    const raw = new Uint8Array(await subtle().exportKey('raw', pair.publicKey))
    return new WebCryptoDeviceKey(pair, raw)
  }

  /** Imports a PKCS#8 private key (from a key file) as non-extractable. */
  static async fromPkcs8(pkcs8: Uint8Array): Promise<WebCryptoDeviceKey> {
    const privateKey = await subtle().importKey('pkcs8', pkcs8 as BufferSource, { name: 'Ed25519' }, false, ['sign'])
    // WebCrypto cannot derive the public half of an imported private key;
    // the PKCS#8 seed is the last 32 bytes, from which noble derives it.
    const publicKey = await ed.getPublicKeyAsync(pkcs8.subarray(pkcs8.length - 32))
    const publicCrypto = await subtle().importKey('raw', publicKey as BufferSource, { name: 'Ed25519' }, true, ['verify'])
    return new WebCryptoDeviceKey({ privateKey, publicKey: publicCrypto }, publicKey)
  }

  async exportPkcs8(): Promise<Uint8Array> {
    return new Uint8Array(await subtle().exportKey('pkcs8', this.keyPair.privateKey))
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    // In Node, node:crypto signs with the same key without WebCrypto's trip
    // through the thread pool (about 35 µs inline, against 50 µs and a hop
    // for every envelope sealed). The key stays the non-extractable CryptoKey
    // it is stored as; the KeyObject lives in memory only, as the CryptoKey
    // does (session keys do the same for AES-GCM).
    if (nodeCrypto) {
      this.nodeKey ??= nodeCrypto.KeyObject.from(this.keyPair.privateKey)
      return new Uint8Array(nodeCrypto.sign(null, message, this.nodeKey))
    }
    return new Uint8Array(await subtle().sign({ name: 'Ed25519' }, this.keyPair.privateKey, message as BufferSource))
  }
}

/**
 * The portable key: @noble/ed25519 over a 32-byte secret. Used only where
 * the platform has no WebCrypto Ed25519, since its secret is ordinary bytes.
 */
export class NobleDeviceKey implements DeviceKey {
  private constructor(
    private readonly secret: Uint8Array,
    readonly publicKey: Uint8Array,
  ) {}

  static generate(): NobleDeviceKey {
    ensureNobleHashes()
    const { secretKey, publicKey } = ed.keygen()
    return new NobleDeviceKey(secretKey, publicKey)
  }

  static fromSecret(secret: Uint8Array): NobleDeviceKey {
    ensureNobleHashes()
    return new NobleDeviceKey(secret.slice(), ed.getPublicKey(secret))
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    ensureNobleHashes()
    return ed.sign(message, this.secret)
  }

  /** The 32-byte secret, for keys meant to travel (a handoff's one-time invite). */
  exportSecret(): Uint8Array {
    return this.secret.slice()
  }
}

function ensureNobleHashes(): void {
  // noble's sync API needs a sync SHA-512; set it once, on first use.
  ed.hashes.sha512 ??= sha512
}

/** A new device key: non-extractable WebCrypto where possible, noble elsewhere. */
export async function generateDeviceKey(): Promise<DeviceKey> {
  return (await hasWebCryptoEd25519()) ? WebCryptoDeviceKey.generate() : NobleDeviceKey.generate()
}
