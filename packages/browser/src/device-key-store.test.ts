import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { closeServer, testBrowser, type TestBrowser } from './testing/chromium-page'

let browser: TestBrowser
afterEach(() => browser?.close())
afterAll(() => closeServer())

describe('device key in IndexedDB', () => {
  it('is created once per origin, survives a reload, and its private half cannot be exported', async () => {
    browser = await testBrowser()
    const a = await browser.page()
    const b = await browser.page()
    // Two contexts opening at once race to create it: both end with one key.
    const [ka, kb] = await Promise.all(
      [a, b].map((p) => p.evaluate(async () => {
        const device = await kai.browser.openBrowserDevice()
        return kai.crypto.toBase64Url(device.key.publicKey)
      })),
    )
    expect(ka).toBe(kb)
    await a.reload()
    await a.waitForFunction(() => globalThis.kaiReady)
    const after = await a.evaluate(async () => {
      const device = await kai.browser.openBrowserDevice()
      const pair = device.key.keyPair
      let exported = 'exported'
      try {
        await crypto.subtle.exportKey('pkcs8', pair.privateKey)
      } catch (e) {
        exported = (e as Error).name
      }
      const message = new TextEncoder().encode('signed after a reload')
      const signature = await device.key.sign(message)
      const verifier = await kai.crypto.defaultVerifier()
      return {
        id: kai.crypto.toBase64Url(device.key.publicKey),
        extractable: pair.privateKey.extractable,
        exported,
        verifies: await verifier.verify(device.key.publicKey, message, signature),
      }
    })
    expect(after).toEqual({ id: ka, extractable: false, exported: 'InvalidAccessError', verifies: true })
  })
})
