import { describe, expect, it } from 'vitest'
import { isKaiError, type ErrorCode } from '@kai-sync/model'
import { randomBytes, utf8 } from './bytes'
import { WebCryptoDeviceKey, webCryptoVerifier } from './ed25519'
import { SessionKey, SessionKeyring } from './session-key'
import { ZERO_HASH, decodeEnvelope, openEnvelope, sealEnvelope, verifyEnvelope, type EnvelopeHeader } from './envelope'
import { deriveClientId, newStreamId } from './ids'

const verifier = webCryptoVerifier()

async function setup() {
  const device = await WebCryptoDeviceKey.generate()
  const key = await SessionKey.generate(3)
  const stream = newStreamId()
  const header: Omit<EnvelopeHeader, 'device' | 'epoch'> = {
    kind: 'update',
    sessionId: 'session-1',
    stream,
    seq: 1,
    prev: ZERO_HASH,
    createdAt: 1_700_000_000_000,
    clientIds: [deriveClientId(device.publicKey, stream)],
    covers: [],
  }
  const plaintext = utf8('the Yjs update')
  const envelope = await sealEnvelope({ header, plaintext, key, signer: device })
  return { device, key, header, plaintext, envelope, keys: new SessionKeyring([key]) }
}

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<ErrorCode | 'ok'> {
  try {
    await (typeof p === 'function' ? p() : p)
    return 'ok'
  } catch (e) {
    if (isKaiError(e)) return e.code
    throw e
  }
}

describe('envelopes', () => {
  it('seal, decode, verify and open round-trip', async () => {
    const { envelope, keys, plaintext, device } = await setup()
    const decoded = decodeEnvelope(envelope.bytes)
    expect(decoded.header).toEqual(envelope.header)
    expect(decoded.header.device).toEqual(device.publicKey)
    expect(decoded.header.epoch).toBe(3)
    expect(decoded.hash).toEqual(envelope.hash)
    await verifyEnvelope(decoded, verifier)
    expect(await openEnvelope(decoded, keys)).toEqual(plaintext)
  })

  it('carries snapshot covers', async () => {
    const { device, key, header } = await setup()
    const covers = [{ device: device.publicKey, stream: newStreamId(), seq: 41, hash: randomBytes(32) }]
    const sealed = await sealEnvelope({ header: { ...header, kind: 'snapshot', covers }, plaintext: new Uint8Array(0), key, signer: device })
    expect(decodeEnvelope(sealed.bytes).header.covers).toEqual(covers)
  })

  it('any changed byte is caught: by the decoder, the signature or the AEAD tag', async () => {
    const { envelope, keys } = await setup()
    for (let i = 0; i < envelope.bytes.length; i++) {
      const bytes = envelope.bytes.slice()
      bytes[i]! ^= 0x01
      const code = await codeOf(async () => {
        const e = decodeEnvelope(bytes)
        await verifyEnvelope(e, verifier)
        await openEnvelope(e, keys)
      })
      expect(['malformed', 'unsupported_version', 'bad_signature', 'wrong_epoch']).toContain(code)
    }
  })

  it('a validly signed envelope with a changed header is caught by the AEAD', async () => {
    // A signer who re-signs a header it did not encrypt under (e.g. swapping
    // the epoch or session) still cannot make the tag match.
    const { device, key, header } = await setup()
    const sealed = await sealEnvelope({ header, plaintext: utf8('x'), key, signer: device })
    const other = await SessionKey.generate(3)
    expect(await codeOf(openEnvelope(sealed, new SessionKeyring([other])))).toBe('decrypt_failed')
  })

  it('no key for the epoch is wrong_epoch', async () => {
    const { envelope } = await setup()
    expect(await codeOf(openEnvelope(envelope, new SessionKeyring([await SessionKey.generate(2)])))).toBe('wrong_epoch')
  })

  it('truncated, padded, foreign and newer-format bytes are rejected with their codes', async () => {
    const { envelope } = await setup()
    const b = envelope.bytes
    expect(await codeOf(() => decodeEnvelope(b.subarray(0, b.length - 1)))).toBe('malformed')
    expect(await codeOf(() => decodeEnvelope(new Uint8Array([...b, 0])))).toBe('malformed')
    expect(await codeOf(() => decodeEnvelope(new Uint8Array(0)))).toBe('malformed')
    expect(await codeOf(() => decodeEnvelope(utf8('{"json": true}')))).toBe('malformed')
    const newer = b.slice()
    newer[3] = 2
    expect(await codeOf(() => decodeEnvelope(newer))).toBe('unsupported_version')
  })

  it('never throws anything but a KaiError on random and mutated bytes', async () => {
    const { envelope } = await setup()
    let seed = 1
    const rand = (n: number) => ((seed = (seed * 48271) % 2147483647) % n)
    for (let i = 0; i < 5000; i++) {
      const bytes = i % 2 ? envelope.bytes.slice(0, rand(envelope.bytes.length + 1)) : envelope.bytes.slice()
      for (let j = rand(4); j >= 0; j--) if (bytes.length) bytes[rand(bytes.length)] = rand(256)
      try {
        decodeEnvelope(bytes)
      } catch (e) {
        expect(isKaiError(e)).toBe(true)
      }
    }
  })

  it('refuses to seal a header with wrong field sizes', async () => {
    const { device, key, header } = await setup()
    const bad = { ...header, stream: new Uint8Array(3) }
    expect(await codeOf(sealEnvelope({ header: bad, plaintext: new Uint8Array(0), key, signer: device }))).toBe('invalid_input')
  })
})

describe('session keys', () => {
  it('non-extractable keys cannot be exported; extractable ones round-trip', async () => {
    const locked = await SessionKey.generate(0)
    expect(locked.extractable).toBe(false)
    expect(await codeOf(locked.exportRaw())).toBe('forbidden')
    const open = await SessionKey.generate(1, { extractable: true })
    const copy = await SessionKey.fromRaw(1, await open.exportRaw())
    const aad = utf8('header')
    const { iv, ciphertext } = await open.encrypt(utf8('secret'), aad)
    expect(await copy.decrypt(iv, ciphertext, aad)).toEqual(utf8('secret'))
    expect(await codeOf(copy.decrypt(iv, ciphertext, utf8('other header')))).toBe('decrypt_failed')
    expect(await codeOf(SessionKey.fromRaw(1, new Uint8Array(16)))).toBe('invalid_input')
  })

  it('the keyring seals with its newest epoch', async () => {
    const ring = new SessionKeyring([await SessionKey.generate(0), await SessionKey.generate(2), await SessionKey.generate(1)])
    expect(ring.current.epoch).toBe(2)
    expect(ring.epochs()).toEqual([0, 1, 2])
    expect(await codeOf(() => new SessionKeyring().current)).toBe('wrong_epoch')
  })
})
