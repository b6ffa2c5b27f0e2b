import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { closeServer, testBrowser, type TestBrowser } from './testing/chromium-page'

let browser: TestBrowser
afterEach(() => browser?.close())
afterAll(() => closeServer())

describe('dropped own envelopes at rest', () => {
  it('are kept per session in IndexedDB, shared by the contexts of the origin, one entry at a time, and gone when the session is forgotten', async () => {
    browser = await testBrowser()
    const a = await browser.page()
    const b = await browser.page()
    await a.evaluate(async () => {
      const device = await kai.browser.openBrowserDevice()
      await device.dropped.keep('s1', 'x', new Uint8Array([1, 2]))
      await device.dropped.keep('s2', 'x', new Uint8Array([9]))
    })
    // Another context keeps one more and forgets none of the first's.
    const seen = await b.evaluate(async () => {
      const device = await kai.browser.openBrowserDevice()
      await device.dropped.keep('s1', 'y', new Uint8Array([3]))
      return (await device.dropped.load('s1')).map((e) => [...e])
    })
    expect(seen).toEqual([[1, 2], [3]])
    const after = await a.evaluate(async () => {
      const device = await kai.browser.openBrowserDevice()
      await device.dropped.forget('s1', 'x')
      await device.dropped.forget('s1', 'unknown')
      const s1 = (await device.dropped.load('s1')).map((e) => [...e])
      await kai.browser.forgetSession(device, 's2')
      return { s1, s2: (await device.dropped.load('s2')).length }
    })
    expect(after).toEqual({ s1: [[3]], s2: 0 })
  })
})
