import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { describe, expect, it } from 'vitest'
import { concatBytes, utf8 } from './bytes'
import { WebCryptoDeviceKey, hasWebCryptoEd25519, passesEd25519Prechecks, webCryptoVerifier, type SignatureVerifier } from './ed25519'
import { NobleDeviceKey, nobleVerifier } from './ed25519-noble'
import { nodeVerifier } from './node-verifier'
import { defaultVerifier } from './default-verifier'

ed.hashes.sha512 = sha512
const L = 2n ** 252n + 27742317777372353535851937790883648493n
const P = 2n ** 255n - 19n
const verifiers: SignatureVerifier[] = [webCryptoVerifier(), nobleVerifier, nodeVerifier()]

function le(n: bigint, length = 32): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn)
  return out
}
function numLE(b: Uint8Array): bigint {
  let n = 0n
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!)
  return n
}

/** Signs with a chosen R point (by its encoding), knowing the secret scalar. */
function signWithR(secret: Uint8Array, message: Uint8Array, rScalar: bigint, rBytes: Uint8Array): Uint8Array {
  const { scalar, pointBytes } = ed.utils.getExtendedPublicKey(secret)
  const k = numLE(sha512(concatBytes(rBytes, pointBytes, message))) % L
  return concatBytes(rBytes, le((rScalar + k * scalar) % L))
}

async function verdicts(pub: Uint8Array, msg: Uint8Array, sig: Uint8Array): Promise<boolean[]> {
  return Promise.all(verifiers.map((v) => v.verify(pub, msg, sig)))
}

describe('Ed25519', () => {
  const message = utf8('a 1 KB update, or near enough')
  const secret = ed.utils.randomSecretKey()
  const pub = ed.getPublicKey(secret)

  it('WebCrypto is available on this platform', async () => {
    expect(await hasWebCryptoEd25519()).toBe(true)
  })

  it('signatures from either implementation verify under every verifier (WebCrypto, noble, node:crypto)', async () => {
    const web = await WebCryptoDeviceKey.generate()
    const noble = await NobleDeviceKey.generate()
    for (const key of [web, noble]) {
      const sig = await key.sign(message)
      expect(await verdicts(key.publicKey, message, sig)).toEqual([true, true, true])
      const other = utf8('a different message')
      expect(await verdicts(key.publicKey, other, sig)).toEqual([false, false, false])
      const flipped = sig.slice()
      flipped[10]! ^= 1
      expect(await verdicts(key.publicKey, message, flipped)).toEqual([false, false, false])
    }
  })

  it('a key written to PKCS#8 and read back signs as the same device, non-extractable', async () => {
    const original = await WebCryptoDeviceKey.generate({ extractable: true })
    const restored = await WebCryptoDeviceKey.fromPkcs8(await original.exportPkcs8())
    expect(restored.publicKey).toEqual(original.publicKey)
    expect(restored.keyPair.privateKey.extractable).toBe(false)
    expect(await nobleVerifier.verify(original.publicKey, message, await restored.sign(message))).toBe(true)
    await expect(restored.exportPkcs8()).rejects.toThrow()
  })

  it('all reject a non-canonical S (S + L)', async () => {
    const sig = ed.sign(message, secret)
    const s = numLE(sig.subarray(32)) + L
    expect(s < 2n ** 256n).toBe(true)
    const malleable = concatBytes(sig.subarray(0, 32), le(s))
    expect(await verdicts(pub, message, malleable)).toEqual([false, false, false])
  })

  it('all reject a small-order public key, even with a signature that satisfies the equation', async () => {
    const identity = le(1n) // the neutral point: [S]B = R + [k]I holds for R = [S]B
    const sig = concatBytes(ed.Point.BASE.multiply(5n).toBytes(), le(5n))
    expect(await verdicts(identity, message, sig)).toEqual([false, false, false])
  })

  it('all reject R = identity, which satisfies the equation (as libsodium does), and its non-canonical alias', async () => {
    const canonical = le(1n)
    const alias = le(P + 1n) // y = p + 1 also decodes to y = 1 without the y < p check
    const crafted = signWithR(secret, message, 0n, canonical)
    // The equation alone holds: a signer can make this, and only the small-order rule refuses it.
    const k = numLE(sha512(concatBytes(canonical, pub, message))) % L
    expect(ed.Point.BASE.multiply(numLE(crafted.subarray(32))).equals(ed.Point.fromBytes(pub).multiply(k))).toBe(true)
    expect(await verdicts(pub, message, crafted)).toEqual([false, false, false])
    expect(await verdicts(pub, message, signWithR(secret, message, 0n, alias))).toEqual([false, false, false])
  })

  it('the scalar check draws the line exactly at L', () => {
    const r = ed.sign(message, secret).subarray(0, 32)
    expect(passesEd25519Prechecks(pub, concatBytes(r, le(L - 1n)))).toBe(true)
    expect(passesEd25519Prechecks(pub, concatBytes(r, le(L)))).toBe(false)
    expect(passesEd25519Prechecks(pub, concatBytes(r, le(L + 1n)))).toBe(false)
    expect(passesEd25519Prechecks(pub, concatBytes(r, le(2n ** 256n - 1n)))).toBe(false)
  })

  it('the small-order rule knows all eight small-order points', () => {
    const order8 = ed.Point.fromBytes(Uint8Array.from(Buffer.from('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', 'hex')))
    const seen = new Set<string>()
    for (let i = 0n, q = ed.Point.ZERO; i < 8n; i++, q = q.add(order8)) {
      expect(q.isSmallOrder()).toBe(true)
      seen.add(Buffer.from(q.toBytes()).toString('hex'))
      // A signature with this R is refused before any arithmetic.
      expect(passesEd25519Prechecks(pub, concatBytes(q.toBytes(), le(1n)))).toBe(false)
    }
    expect(seen.size).toBe(8)
    expect(passesEd25519Prechecks(pub, ed.sign(message, secret))).toBe(true)
  })

  it('all reject a mixed-order R, which a cofactored verifier (noble strict) accepts', async () => {
    const r = 123456789n
    const torsion = ed.Point.fromBytes(le(P - 1n)) // (0, -1): the point of order 2
    const rBytes = ed.Point.BASE.multiply(r).add(torsion).toBytes()
    const sig = signWithR(secret, message, r, rBytes)
    expect(ed.verify(sig, message, pub, { zip215: false })).toBe(true)
    expect(await verdicts(pub, message, sig)).toEqual([false, false, false])
  })

  it('all reject wrong lengths', async () => {
    const sig = ed.sign(message, secret)
    expect(await verdicts(pub, message, sig.subarray(0, 63))).toEqual([false, false, false])
    expect(await verdicts(pub.subarray(0, 31), message, sig)).toEqual([false, false, false])
  })

  it('node:crypto gives the same verdicts inline and on the thread pool, and is the default in Node', async () => {
    const node = nodeVerifier()
    const key = await NobleDeviceKey.generate()
    const signed = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      const m = utf8(`message ${i}`)
      const sig = await key.sign(m)
      if (i % 2 === 1) sig[3]! ^= 1
      return { m, sig, valid: i % 2 === 0 }
    }))
    // One at a time (inline), then all at once (past the first, on the pool).
    const alone: boolean[] = []
    for (const { m, sig } of signed) alone.push(await node.verify(key.publicKey, m, sig))
    const together = await Promise.all(signed.map(({ m, sig }) => node.verify(key.publicKey, m, sig)))
    expect(alone).toEqual(signed.map((s) => s.valid))
    expect(together).toEqual(alone)
    expect((await defaultVerifier()).name).toBe('node')
  })
})
