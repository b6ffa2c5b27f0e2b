import * as ed from '@noble/ed25519'
import { concatBytes } from './bytes'
import { L, passesEd25519Prechecks, type DeviceKey, type SignatureVerifier } from './ed25519-rule'

// Ed25519 in pure JavaScript (@noble/ed25519), for platforms whose WebCrypto
// has no Ed25519, for one-time handoff invites (their secret is bytes that
// travel) and for deriving a PKCS#8 key's public half. A browser with
// WebCrypto needs none of it to open and write a session, so the modules
// that do (ed25519.ts, default-verifier.ts, the engine's invites) import
// this one dynamically: it stays out of a page's first load. It hashes
// with WebCrypto's SHA-512 (noble's async API), which every platform here
// has even where its WebCrypto lacks Ed25519: a sync SHA-512 would be
// @noble/hashes' sha2.js, whose file the first load shares for SHA-256.

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

async function sha512(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await globalThis.crypto.subtle.digest('SHA-512', data as BufferSource))
}

export async function verifyPortable(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  if (!passesEd25519Prechecks(publicKey, signature)) return false
  const r = signature.subarray(0, 32)
  const A = decodePoint(publicKey)
  const R = decodePoint(r)
  if (!A || !R) return false
  const s = numberLE(signature.subarray(32))
  const k = numberLE(await sha512(concatBytes(r, publicKey, message))) % L
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

  static async generate(): Promise<NobleDeviceKey> {
    const { secretKey, publicKey } = await ed.keygenAsync()
    return new NobleDeviceKey(secretKey, publicKey)
  }

  static async fromSecret(secret: Uint8Array): Promise<NobleDeviceKey> {
    return new NobleDeviceKey(secret.slice(), await ed.getPublicKeyAsync(secret))
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    return ed.signAsync(message, this.secret)
  }

  /** The 32-byte secret, for keys meant to travel (a handoff's one-time invite). */
  exportSecret(): Uint8Array {
    return this.secret.slice()
  }
}

/** The public half of a 32-byte Ed25519 seed (a PKCS#8 key's last 32 bytes). */
export function publicKeyOfSeed(seed: Uint8Array): Promise<Uint8Array> {
  return ed.getPublicKeyAsync(seed)
}
