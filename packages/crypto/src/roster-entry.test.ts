import { describe, expect, it } from 'vitest'
import { isKaiError } from '@kai-sync/model'
import { WebCryptoDeviceKey, webCryptoVerifier } from './ed25519'
import { nobleVerifier } from './ed25519-noble'
import { createGenesis, decodeRosterEntry, isGenesis, signRosterEntry, verifyRosterEntry } from './roster-entry'
import { deriveClientId, deriveSessionId, newStreamId } from './ids'

describe('roster entries', () => {
  it('a genesis names a session id derived from its owner key and nonce', async () => {
    const owner = await WebCryptoDeviceKey.generate()
    const genesis = await createGenesis(owner, 'laptop')
    expect(genesis.sessionId).toBe(deriveSessionId(owner.publicKey, genesis.nonce))
    expect(isGenesis(genesis)).toBe(true)
    const decoded = decodeRosterEntry(genesis.bytes)
    expect(decoded).toEqual(genesis)
    await verifyRosterEntry(decoded, webCryptoVerifier())
    await verifyRosterEntry(decoded, nobleVerifier)
  })

  it('a squatter cannot make a genesis for someone else\'s session id', async () => {
    const owner = await WebCryptoDeviceKey.generate()
    const squatter = await WebCryptoDeviceKey.generate()
    const genesis = await createGenesis(owner, 'laptop')
    const claim = await signRosterEntry(
      { sessionId: genesis.sessionId, subject: squatter.publicKey, role: 'owner', version: 1, issuedAt: 1, nonce: genesis.nonce, label: 'x' },
      squatter,
    )
    await verifyRosterEntry(claim, webCryptoVerifier()) // validly signed ...
    expect(isGenesis(claim)).toBe(false) // ... but not a genesis of that id
  })

  it('a changed entry no longer verifies; broken bytes are malformed', async () => {
    const owner = await WebCryptoDeviceKey.generate()
    const genesis = await createGenesis(owner, 'laptop')
    const bytes = genesis.bytes.slice()
    bytes[bytes.length - 64 - 1 - 32 - 1]! ^= 1 // the label's last byte: before until (1), box (32), signature (64)
    await expect(verifyRosterEntry(decodeRosterEntry(bytes), webCryptoVerifier())).rejects.toMatchObject({ code: 'bad_signature' })
    for (const broken of [genesis.bytes.subarray(0, 20), new Uint8Array([...genesis.bytes, 1]), new Uint8Array(3)]) {
      try {
        decodeRosterEntry(broken)
        expect.unreachable()
      } catch (e) {
        expect(isKaiError(e, 'malformed')).toBe(true)
      }
    }
  })
})

describe('ids', () => {
  it('client ids are uint32, fixed per (device, stream) and differ across streams', async () => {
    const device = (await WebCryptoDeviceKey.generate()).publicKey
    const s1 = newStreamId()
    const s2 = newStreamId()
    const id = deriveClientId(device, s1)
    expect(Number.isInteger(id) && id >= 0 && id < 2 ** 32).toBe(true)
    expect(deriveClientId(device, s1)).toBe(id)
    expect(deriveClientId(device, s2)).not.toBe(id)
  })
})
