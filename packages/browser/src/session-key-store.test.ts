import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { closeServer, testBrowser, type TestBrowser } from './testing/chromium-page'

let browser: TestBrowser
afterEach(() => browser?.close())
afterAll(() => closeServer())

describe('session keys at rest', () => {
  it('stores a usable non-extractable key and a wrapped copy only the handoff path can export', async () => {
    browser = await testBrowser()
    const page = await browser.page()
    const r = await page.evaluate(async () => {
      const { SessionKey } = kai.crypto
      const device = await kai.browser.openBrowserDevice()
      const original = await SessionKey.generate(0, { extractable: true })
      const originalRaw = [...(await original.exportRaw())]
      await device.keys.save('session-a', original)
      const ring = await device.keys.keyring('session-a')
      const stored = ring.current
      const sealed = await stored.encrypt(new TextEncoder().encode('hello'), new Uint8Array([1]))
      const exported = await device.keys.exportForHandoff('session-a', 0)
      const opened = new TextDecoder().decode(await exported.decrypt(sealed.iv, sealed.ciphertext, new Uint8Array([1])))
      let storedExport = 'exported'
      try {
        await stored.exportRaw()
      } catch (e) {
        storedExport = (e as { code?: string }).code ?? String(e)
      }
      // Every CryptoKey IndexedDB holds for sessions is non-extractable.
      const tx = device.db.transaction('keys', 'readonly')
      const all = (await kai.idb.request(tx.objectStore('keys').getAll())) as Array<{ key?: CryptoKey } | CryptoKey>
      const keys = all.map((v) => (v instanceof CryptoKey ? v : v.key!))
      return {
        storedExport,
        opened,
        sameBytes: JSON.stringify([...(await exported.exportRaw())]) === JSON.stringify(originalRaw),
        anyExtractableAtRest: keys.some((k) => k.extractable),
        keyCount: keys.length,
      }
    })
    expect(r).toEqual({ storedExport: 'forbidden', opened: 'hello', sameBytes: true, anyExtractableAtRest: false, keyCount: 2 })
  })

  it('refuses a wrapped key moved to another session, and a session it holds no key for', async () => {
    browser = await testBrowser()
    const page = await browser.page()
    const r = await page.evaluate(async () => {
      const device = await kai.browser.openBrowserDevice()
      await device.keys.save('session-a', await kai.crypto.SessionKey.generate(0, { extractable: true }))
      const code = (e: unknown) => (e as { code?: string }).code
      const missing = await device.keys.keyring('session-b').then(() => 'found', code)
      // Copy session-a's record under session-b's key: it must not unwrap there.
      const tx = device.db.transaction('keys', 'readwrite')
      const store = tx.objectStore('keys')
      const record = (await kai.idb.request(store.get(['session-a', 0]))) as Record<string, unknown>
      store.put({ ...record, sessionId: 'session-b' }, ['session-b', 0])
      await kai.idb.committed(tx)
      const moved = await device.keys.exportForHandoff('session-b', 0).then(() => 'unwrapped', code)
      return { missing, moved }
    })
    expect(r).toEqual({ missing: 'not_found', moved: 'decrypt_failed' })
  })
})
