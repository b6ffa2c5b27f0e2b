import { toBase64Url } from './bytes'
import { isCanonicalPoint } from './ed25519-point'

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
// noble's point arithmetic (ed25519-noble.ts), since noble's own `verify`
// checks the cofactored equation. Keys are checked without a curve library
// (ed25519-point.ts), so a browser with WebCrypto loads no noble at all.
// An honest R = [r]B is never of small order.

export const L = 2n ** 252n + 27742317777372353535851937790883648493n
const SIGNATURE_BYTES = 64
const KEY_BYTES = 32

// Decoding a key costs a square root; signers are few, so remember them.
const acceptedKeys = new Set<string>()
export const MAX_REMEMBERED_KEYS = 4096

/** A key is acceptable if it is a canonical point of large order. */
export function isAcceptablePublicKey(publicKey: Uint8Array): boolean {
  if (publicKey.length !== KEY_BYTES) return false
  const id = toBase64Url(publicKey)
  if (acceptedKeys.has(id)) return true
  // A canonical encoding of a small-order point is one of the eight below.
  if (!isCanonicalPoint(publicKey) || isSmallOrderEncoding(publicKey)) return false
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

/** A device's signing key. The private half never leaves it. */
export interface DeviceKey {
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array
  sign(message: Uint8Array): Promise<Uint8Array>
}
