import { describe, expect, it } from 'vitest'
import { WebCryptoDeviceKey, webCryptoVerifier } from './ed25519'
import { HANDOFF_TTL_MS, decodeHandoffToken, signHandoffToken, verifyHandoffToken } from './handoff-token'

const verifier = webCryptoVerifier()

async function token(issuedAt = Date.now()) {
  const issuer = await WebCryptoDeviceKey.generate()
  const invite = await WebCryptoDeviceKey.generate()
  return signHandoffToken({ sessionId: 's1', sourceMode: 'sidepanel', targetMode: 'mobile', transfer: 'takeover', invite: invite.publicKey, issuedAt }, issuer)
}

describe('handoff tokens', () => {
  it('round-trips, verifies, and expires five minutes after issue', async () => {
    const t = await token()
    const decoded = decodeHandoffToken(t.bytes)
    expect(decoded).toEqual(t)
    expect(decoded.expiresAt - decoded.issuedAt).toBe(HANDOFF_TTL_MS)
    await verifyHandoffToken(decoded, verifier, { sessionId: 's1' })
    await expect(verifyHandoffToken(decoded, verifier, { now: t.expiresAt + 1 })).rejects.toMatchObject({ code: 'expired' })
  })

  it('every changed byte is caught; another session is wrong_session; unique ids', async () => {
    const t = await token()
    for (let i = 4; i < t.bytes.length; i++) {
      const b = t.bytes.slice()
      b[i]! ^= 1
      const outcome = await (async () => {
        try {
          await verifyHandoffToken(decodeHandoffToken(b), verifier)
          return 'ok'
        } catch (e) {
          return (e as { code: string }).code
        }
      })()
      expect(['bad_signature', 'malformed']).toContain(outcome)
    }
    await expect(verifyHandoffToken(t, verifier, { sessionId: 's2' })).rejects.toMatchObject({ code: 'wrong_session' })
    expect((await token()).id).not.toEqual(t.id)
  })
})
