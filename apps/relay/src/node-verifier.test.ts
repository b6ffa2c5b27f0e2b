import { describe, expect, it } from 'vitest'
import { WebCryptoDeviceKey, webCryptoVerifier } from '@kai-sync/crypto'
import { nodeVerifier } from './node-verifier'

// The relay's verifier must accept exactly what the replicas' verifiers do.
const L = 2n ** 252n + 27742317777372353535851937790883648493n

describe('nodeVerifier', () => {
  it('agrees with the WebCrypto verifier on valid, tampered, non-canonical and small-order input', async () => {
    const key = await WebCryptoDeviceKey.generate()
    const message = new Uint8Array(300).fill(9)
    const signature = await key.sign(message)
    const tampered = signature.slice()
    tampered[5]! ^= 1
    // S + L: the same point equation, but a non-canonical scalar.
    const s = signature.subarray(32).reduceRight((n, b) => (n << 8n) | BigInt(b), 0n) + L
    const malleable = signature.slice()
    for (let i = 0, v = s; i < 32; i++, v >>= 8n) malleable[32 + i] = Number(v & 0xffn)
    const smallOrderKey = new Uint8Array(32) // the identity's encoding is 0x01 followed by zeros
    smallOrderKey[0] = 1
    const cases: [Uint8Array, Uint8Array, Uint8Array][] = [
      [key.publicKey, message, signature],
      [key.publicKey, message, tampered],
      [key.publicKey, new Uint8Array(300), signature],
      [key.publicKey, message, malleable],
      [smallOrderKey, message, signature],
      [key.publicKey, message, signature.subarray(0, 63)],
    ]
    const node = nodeVerifier()
    const web = webCryptoVerifier()
    const verdicts = await Promise.all(cases.map(async ([k, m, sig]) => [await node.verify(k, m, sig), await web.verify(k, m, sig)]))
    expect(verdicts.map(([n]) => n)).toEqual([true, false, false, false, false, false])
    for (const [n, w] of verdicts) expect(n).toBe(w)
  })
})
