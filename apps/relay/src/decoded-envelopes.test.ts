import { describe, expect, it } from 'vitest'
import { SessionKey, WebCryptoDeviceKey, decodeEnvelope, type Envelope } from '@kai-sync/crypto'
import { DecodedEnvelopes } from './decoded-envelopes'
import { sealedBy } from './testing/forge'

async function arrived(): Promise<Envelope> {
  const signer = await WebCryptoDeviceKey.generate()
  return decodeEnvelope(await sealedBy(signer, 'session', await SessionKey.generate(0), new Uint8Array(200).fill(7)))
}

describe('DecodedEnvelopes', () => {
  it('during a merge, hands back the decode made on arrival for equal bytes in another array (Yjs copies what it integrates)', async () => {
    const env = await arrived()
    const memo = new DecodedEnvelopes()
    const found = memo.during([env], () => memo.decode(Uint8Array.from(env.bytes)))
    expect(found).toBe(env)
  })

  it('decodes bytes that differ from every known envelope for what they say, even under the same signature', async () => {
    const env = await arrived()
    const tampered = Uint8Array.from(env.bytes)
    const at = tampered.length - 64 - 10 // a ciphertext byte; the signature (the last 64 bytes) is unchanged
    tampered[at] = tampered[at]! ^ 1
    const memo = new DecodedEnvelopes()
    const found = memo.during([env], () => memo.decode(tampered))
    expect(found).not.toBe(env)
    expect(found.ciphertext).toEqual(decodeEnvelope(tampered).ciphertext)
    expect(found.ciphertext).not.toEqual(env.ciphertext)
  })

  it('forgets the envelopes once the merge is over, also when it throws', async () => {
    const env = await arrived()
    const memo = new DecodedEnvelopes()
    memo.during([env], () => {})
    expect(memo.decode(env.bytes)).not.toBe(env)
    expect(() =>
      memo.during([env], () => {
        throw new Error('refused')
      }),
    ).toThrow('refused')
    expect(memo.decode(env.bytes)).not.toBe(env)
  })

  it('throws for bytes that are not an envelope, as decodeEnvelope does', () => {
    const memo = new DecodedEnvelopes()
    expect(() => memo.during([], () => memo.decode(new Uint8Array([1, 2, 3])))).toThrow()
  })
})
