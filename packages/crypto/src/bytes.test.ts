import { describe, expect, it } from 'vitest'
import { fromBase64Url, toBase64Url, toBase64UrlPortable } from './bytes'

// toBase64Url names devices, streams and rooms everywhere: the browser's
// portable encoder and Node's native one must give the very same string.
describe('base64url', () => {
  const samples = [0, 1, 2, 3, 4, 31, 32, 33, 64, 100, 8191, 8192, 8193, 30_000].map((n) => {
    const bytes = new Uint8Array(n)
    for (let i = 0; i < n; i++) bytes[i] = (i * 151 + 7) & 255
    return bytes
  })

  it('is the unpadded base64url alphabet, the same with and without Buffer, at every length', () => {
    for (const bytes of samples) {
      const expected = Buffer.from(bytes).toString('base64url')
      expect(toBase64Url(bytes)).toBe(expected)
      expect(toBase64UrlPortable(bytes)).toBe(expected)
      expect(expected).not.toMatch(/[=+/]/)
    }
  })

  it('encodes a view into a larger buffer by its own bytes only', () => {
    const whole = new Uint8Array([250, 251, 252, 1, 2, 3, 4, 253])
    const view = whole.subarray(3, 7)
    expect(toBase64Url(view)).toBe(Buffer.from([1, 2, 3, 4]).toString('base64url'))
    expect(toBase64UrlPortable(view)).toBe(toBase64Url(view))
  })

  it('round-trips through fromBase64Url', () => {
    for (const bytes of samples) expect(fromBase64Url(toBase64UrlPortable(bytes))).toEqual(bytes)
  })
})
