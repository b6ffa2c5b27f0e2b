import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { afterAll, describe, expect, it } from 'vitest'
import { WebCryptoDeviceKey, webCryptoVerifier, type SignatureVerifier, nodeVerifier } from '@kai-sync/crypto'
import { nobleVerifier } from '@kai-sync/crypto/noble'
import { sodiumVerifier } from './sodium-verifier'

// The relay's verifiers must accept exactly what the replicas' verifiers do.
ed.hashes.sha512 = sha512
const L = 2n ** 252n + 27742317777372353535851937790883648493n
const le = (n: bigint) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn))
const num = (b: Uint8Array) => b.reduceRight((n, x) => (n << 8n) | BigInt(x), 0n)

const sodiumInline = sodiumVerifier()!
const sodiumThreaded = sodiumVerifier({ inlinePerMs: 0 })!
afterAll(async () => {
  await sodiumInline.close()
  await sodiumThreaded.close()
})

async function cases(): Promise<{ name: string; key: Uint8Array; message: Uint8Array; signature: Uint8Array; valid: boolean }[]> {
  const key = await WebCryptoDeviceKey.generate()
  const message = new Uint8Array(300).fill(9)
  const signature = await key.sign(message)
  const tampered = signature.slice()
  tampered[5]! ^= 1
  // S + L: the same point equation, but a non-canonical scalar.
  const malleable = signature.slice()
  malleable.set(le(num(signature.subarray(32)) + L), 32)
  const smallOrderKey = le(1n) // the identity
  // R = identity with S = k·a satisfies the equation: only the small-order rule refuses it.
  const secret = ed.utils.randomSecretKey()
  const { scalar, pointBytes } = ed.utils.getExtendedPublicKey(secret)
  const k = num(sha512(new Uint8Array([...le(1n), ...pointBytes, ...message]))) % L
  const identityR = new Uint8Array([...le(1n), ...le((k * scalar) % L)])
  return [
    { name: 'valid', key: key.publicKey, message, signature, valid: true },
    { name: 'tampered signature', key: key.publicKey, message, signature: tampered, valid: false },
    { name: 'other message', key: key.publicKey, message: new Uint8Array(300), signature, valid: false },
    { name: 'non-canonical S', key: key.publicKey, message, signature: malleable, valid: false },
    { name: 'small-order key', key: smallOrderKey, message, signature, valid: false },
    { name: 'R = identity', key: pointBytes, message, signature: identityR, valid: false },
    { name: 'short signature', key: key.publicKey, message, signature: signature.subarray(0, 63), valid: false },
  ]
}

describe('the relay verifiers', () => {
  const verifiers: [string, SignatureVerifier][] = [
    ['node:crypto', nodeVerifier()],
    ['libsodium inline', sodiumInline],
    ['libsodium on its thread', sodiumThreaded],
  ]

  it('libsodium loads on this platform (the relay would fall back to node:crypto)', () => {
    expect(sodiumInline.name).toBe('libsodium')
  })

  it('agree with the WebCrypto and noble verifiers on valid, tampered, non-canonical and small-order input', async () => {
    const all = await cases()
    for (const [name, verifier] of [...verifiers, ['webcrypto', webCryptoVerifier()], ['noble', nobleVerifier]] as const) {
      const verdicts = await Promise.all(all.map((c) => verifier.verify(c.key, c.message, c.signature)))
      expect(Object.fromEntries(all.map((c, i) => [c.name, verdicts[i]])), name).toEqual(Object.fromEntries(all.map((c) => [c.name, c.valid])))
    }
  })

  it('under load, each of many checks asked at once gets its own verdict', async () => {
    const keys = await Promise.all([0, 1, 2].map(() => WebCryptoDeviceKey.generate()))
    const jobs = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const key = keys[i % 3]!
        const message = new Uint8Array(100 + (i % 50)).fill(i & 0xff)
        const signature = await key.sign(message)
        if (i % 7 === 0) signature[40]! ^= 1
        return { key: key.publicKey, message, signature, valid: i % 7 !== 0 }
      }),
    )
    for (const verifier of [sodiumInline, sodiumThreaded]) {
      const verdicts = await Promise.all(jobs.map((j) => verifier.verify(j.key, j.message, j.signature)))
      expect(verdicts).toEqual(jobs.map((j) => j.valid))
    }
  })

  it('checks still owed when the verifier closes are answered, not dropped', async () => {
    const verifier = sodiumVerifier({ inlinePerMs: 0 })!
    const key = await WebCryptoDeviceKey.generate()
    const message = new Uint8Array([1, 2, 3])
    const signature = await key.sign(message)
    const pending = Array.from({ length: 20 }, () => verifier.verify(key.publicKey, message, signature))
    await new Promise((r) => setImmediate(r))
    await verifier.close()
    expect(await Promise.all(pending)).toEqual(new Array(20).fill(true))
    expect(await verifier.verify(key.publicKey, message, signature)).toBe(true)
  })
})
