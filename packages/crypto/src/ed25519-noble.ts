import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { concatBytes } from './bytes'
import { L, passesEd25519Prechecks, type DeviceKey, type SignatureVerifier } from './ed25519-rule'

// Ed25519 in pure JavaScript (@noble/ed25519), for platforms whose WebCrypto
// has no Ed25519, for one-time handoff invites (their secret is bytes that
// travel) and for deriving a PKCS#8 key's public half. A browser with
// WebCrypto needs none of it to open and write a session, so the modules
// that do (ed25519.ts, default-verifier.ts, the engine's invites) import
// this one dynamically: it stays out of a page's first load.

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

/** The public half of a 32-byte Ed25519 seed (a PKCS#8 key's last 32 bytes). */
export function publicKeyOfSeed(seed: Uint8Array): Promise<Uint8Array> {
  return ed.getPublicKeyAsync(seed)
}
