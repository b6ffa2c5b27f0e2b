import { describe, expect, it } from 'vitest'
import { isKaiError } from '@kai-sync/model'
import { WebCryptoDeviceKey, webCryptoVerifier } from './ed25519'
import { nobleVerifier } from './ed25519-noble'
import { capabilityToParam, decodeCapability, signCapability, verifyCapability } from './capability'

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  const e = await p.then(() => null, (x: unknown) => x)
  expect(isKaiError(e) ? e.code : e).toBe(code)
}

describe('capabilities', () => {
  it('round-trips through its URL form and verifies on both verifiers', async () => {
    const device = await WebCryptoDeviceKey.generate()
    const cap = await signCapability({ room: 'room-1', now: 1000, ttlMs: 5000 }, device)
    const param = capabilityToParam(cap)
    expect(param).toMatch(/^[A-Za-z0-9_-]+$/)
    const decoded = decodeCapability(param)
    expect(decoded).toEqual(cap)
    await verifyCapability(decoded, webCryptoVerifier(), { room: 'room-1', now: 2000 })
    await verifyCapability(decoded, nobleVerifier, { room: 'room-1', now: 2000 })
  })

  it('refuses an expired one, one issued far in the future, and one that lives too long', async () => {
    const device = await WebCryptoDeviceKey.generate()
    const cap = await signCapability({ room: 'r', now: 1000, ttlMs: 5000 }, device)
    await rejects(verifyCapability(cap, webCryptoVerifier(), { room: 'r', now: 6000 }), 'expired')
    await rejects(verifyCapability(cap, webCryptoVerifier(), { room: 'r', now: 1000 - 120_000 }), 'expired')
    const long = await signCapability({ room: 'r', now: 1000, ttlMs: 3_600_000 }, device)
    await rejects(verifyCapability(long, webCryptoVerifier(), { room: 'r', now: 2000 }), 'expired')
  })

  it('refuses one for another room and one whose bytes were changed', async () => {
    const device = await WebCryptoDeviceKey.generate()
    const cap = await signCapability({ room: 'r', now: 1000 }, device)
    await rejects(verifyCapability(cap, webCryptoVerifier(), { room: 'other', now: 2000 }), 'wrong_session')
    const bytes = cap.bytes.slice()
    bytes[bytes.length - 70]! ^= 1 // inside the nonce
    await rejects(verifyCapability(decodeCapability(bytes), webCryptoVerifier(), { room: 'r', now: 2000 }), 'bad_signature')
  })

  it('refuses one signed by a key other than the one it names', async () => {
    const device = await WebCryptoDeviceKey.generate()
    const forger = await WebCryptoDeviceKey.generate()
    const cap = await signCapability({ room: 'r', now: 1000 }, forger)
    const forged = decodeCapability(cap.bytes.slice())
    const bytes = forged.bytes
    bytes.set(device.publicKey, 4 + 1 + 1) // magic+version, varString length 1, "r"
    await rejects(verifyCapability(decodeCapability(bytes), webCryptoVerifier(), { room: 'r', now: 2000 }), 'bad_signature')
  })

  it('says malformed for truncated, padded, foreign and non-base64url input', async () => {
    const device = await WebCryptoDeviceKey.generate()
    const cap = await signCapability({ room: 'r' }, device)
    for (const bad of [cap.bytes.subarray(0, cap.bytes.length - 1), new Uint8Array([...cap.bytes, 0]), new Uint8Array([1, 2, 3, 4, 5])]) {
      expect(() => decodeCapability(bad)).toThrow(/malformed/)
    }
    expect(() => decodeCapability('not base64!')).toThrow(/malformed/)
  })
})
