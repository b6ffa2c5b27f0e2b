import { describe, expect, it } from 'vitest'
import { WebCryptoDeviceKey, toBase64Url } from '@kai-sync/crypto'
import { canonicalJson, deltaSigningBytes, signDelta, verifyDeltaSignature } from './delta-signature'

// What a client in another language must reproduce byte for byte.

describe('canonicalJson (RFC 8785)', () => {
  it('matches the RFC\'s example of numbers, strings and literals', () => {
    const input = JSON.parse('{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}')
    expect(canonicalJson(input)).toBe('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}')
  })

  it('sorts member names by UTF-16 code units, as the RFC\'s sorting example', () => {
    const input = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One', '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis' }
    // Read the names off the text: a parsed object would list "1" first, as JS orders integer keys.
    const order = [...canonicalJson(input).matchAll(/("(?:[^"\\]|\\.)*"):"/g)].map((m) => JSON.parse(m[1]!) as string)
    expect(order).toEqual(['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'])
  })

  it('refuses what JSON cannot hold', () => {
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(/invalid_input/)
  })
})

describe('delta signatures', () => {
  it('sign the domain prefix, a zero byte and the canonical delta; any other order of members verifies the same', async () => {
    const key = await WebCryptoDeviceKey.generate()
    const delta = { session_id: 's', timestamp: 1, device_id: 'd', mode: 'headless' }
    expect(new TextDecoder().decode(deltaSigningBytes(delta))).toBe('kai-sync/session-delta/v1\0{"device_id":"d","mode":"headless","session_id":"s","timestamp":1}')
    const signature = await signDelta(delta, key)
    const reordered = { mode: 'headless', timestamp: 1, device_id: 'd', session_id: 's' }
    expect(toBase64Url(await verifyDeltaSignature(reordered, signature, [key.publicKey]))).toBe(toBase64Url(key.publicKey))
    await expect(verifyDeltaSignature({ ...delta, timestamp: 2 }, signature, [key.publicKey])).rejects.toThrow(/bad_signature/)
    await expect(verifyDeltaSignature(delta, signature, [])).rejects.toThrow(/no client key is registered/)
  })
})
