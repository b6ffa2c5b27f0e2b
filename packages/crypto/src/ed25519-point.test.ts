import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { describe, expect, it } from 'vitest'
import { isCanonicalPoint } from './ed25519-point'
import { isAcceptablePublicKey } from './ed25519'

// The browser's key check (no curve library) must accept exactly the
// encodings noble's strict decoding accepts, and keys exactly where noble
// finds a point of large order: two replicas disagreeing on one key would
// disagree on every envelope it signs.

ed.hashes.sha512 = sha512
const P = 2n ** 255n - 19n

function le(n: bigint): Uint8Array {
  const out = new Uint8Array(32)
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn)
  return out
}
function withSign(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice()
  out[31]! |= 0x80
  return out
}
function nobleDecodes(bytes: Uint8Array): boolean {
  try {
    ed.Point.fromBytes(bytes, false)
    return true
  } catch {
    return false
  }
}
function nobleAccepts(bytes: Uint8Array): boolean {
  try {
    return !ed.Point.fromBytes(bytes, false).isSmallOrder()
  } catch {
    return false
  }
}

/** Encodings at the edges: y near 0, 1, p and 2^255, the small-order points and their non-canonical aliases, each with either sign bit. */
function crafted(): Uint8Array[] {
  const ys: bigint[] = []
  for (let i = 0n; i < 24n; i++) ys.push(i, P - 1n - i, P + i, 2n ** 255n - 1n - i)
  const order8 = ed.Point.fromBytes(Uint8Array.from(Buffer.from('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', 'hex')))
  const points: Uint8Array[] = []
  for (let i = 0, q = ed.Point.ZERO; i < 8; i++, q = q.add(order8)) points.push(q.toBytes())
  const base = [ed.Point.BASE.toBytes(), ed.Point.BASE.multiply(7n).toBytes(), ...points]
  return [...ys.filter((y) => y < 2n ** 255n).map(le), ...base].flatMap((b) => [b, withSign(b)])
}

describe('the canonical point check', () => {
  it('agrees with noble on every edge case: y ≥ p, x = 0 with its sign bit set, no square root, small order', () => {
    const inputs = crafted()
    const verdicts = inputs.map((b) => [isCanonicalPoint(b), isAcceptablePublicKey(b)])
    expect(verdicts).toEqual(inputs.map((b) => [nobleDecodes(b), nobleAccepts(b)]))
    // The cases are real ones: some of each kind.
    expect(inputs.some((b) => !nobleDecodes(b))).toBe(true)
    expect(inputs.some((b) => nobleDecodes(b) && !nobleAccepts(b))).toBe(true)
  })

  it('agrees with noble on random bytes (about half of them decode) and on real public keys', () => {
    const inputs = Array.from({ length: 400 }, () => crypto.getRandomValues(new Uint8Array(32)))
    for (let i = 0; i < 100; i++) inputs.push(ed.getPublicKey(ed.utils.randomSecretKey()))
    const decodes = inputs.map(nobleDecodes)
    expect(inputs.map(isCanonicalPoint)).toEqual(decodes)
    expect(inputs.map(isAcceptablePublicKey)).toEqual(inputs.map(nobleAccepts))
    expect(decodes.filter(Boolean).length).toBeGreaterThan(150)
  })

  it('refuses any other length', () => {
    expect(isCanonicalPoint(ed.Point.BASE.toBytes().subarray(0, 31))).toBe(false)
    expect(isAcceptablePublicKey(new Uint8Array(33))).toBe(false)
  })
})
