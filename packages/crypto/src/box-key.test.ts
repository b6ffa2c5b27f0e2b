import { describe, expect, it } from 'vitest'
import { isKaiError } from '@kai-sync/model'
import { BoxKey, decodeKeyGrant, grantKey, openKeyGrant, verifyKeyGrant } from './box-key'
import { WebCryptoDeviceKey, webCryptoVerifier } from './ed25519'
import { SessionKey } from './session-key'

async function setup() {
  const issuer = await WebCryptoDeviceKey.generate()
  const recipient = await WebCryptoDeviceKey.generate()
  const box = await BoxKey.generate()
  const key = await SessionKey.generate(4, { extractable: true })
  const grant = await grantKey({ sessionId: 's1', key, recipient: recipient.publicKey, recipientBox: box.publicKey, issuer })
  return { issuer, recipient, box, key, grant }
}

describe('key grants', () => {
  it('the recipient\'s box opens the grant and gets the epoch\'s key', async () => {
    const { box, key, grant } = await setup()
    const decoded = decodeKeyGrant(grant.bytes)
    await verifyKeyGrant(decoded, webCryptoVerifier())
    expect(decoded.epoch).toBe(4)
    expect(await openKeyGrant(decoded, box)).toEqual(await key.exportRaw())
  })

  it('another box cannot open it; the box key is non-extractable and survives PKCS#8', async () => {
    const { grant, box } = await setup()
    expect(box.keyPair.privateKey.extractable).toBe(false)
    await expect(openKeyGrant(grant, await BoxKey.generate())).rejects.toMatchObject({ code: 'decrypt_failed' })
    const exportable = await BoxKey.generate({ extractable: true })
    const restored = await BoxKey.fromPkcs8(await exportable.exportPkcs8(), exportable.publicKey)
    expect(restored.publicKey).toEqual(exportable.publicKey)
    expect(restored.keyPair.privateKey.extractable).toBe(false)
  })

  it('a changed grant does not verify, and a grant moved to another session or epoch does not open', async () => {
    const { grant, box } = await setup()
    const tampered = grant.bytes.slice()
    tampered[10]! ^= 1
    await expect(verifyKeyGrant(decodeKeyGrant(tampered), webCryptoVerifier())).rejects.toMatchObject({ code: 'bad_signature' })
    // Even an issuer re-signing the same ciphertext for another epoch fails the AEAD context.
    await expect(openKeyGrant({ ...decodeKeyGrant(grant.bytes), epoch: 5 }, box)).rejects.toMatchObject({ code: 'decrypt_failed' })
    for (const broken of [grant.bytes.subarray(0, 30), new Uint8Array([...grant.bytes, 0])]) {
      try {
        decodeKeyGrant(broken)
        expect.unreachable()
      } catch (e) {
        expect(isKaiError(e, 'malformed')).toBe(true)
      }
    }
  })

  it('refuses to grant a key that is not extractable', async () => {
    const { issuer, recipient, box } = await setup()
    await expect(grantKey({ sessionId: 's', key: await SessionKey.generate(0), recipient: recipient.publicKey, recipientBox: box.publicKey, issuer })).rejects.toMatchObject({ code: 'forbidden' })
  })
})
