import { fileURLToPath } from 'node:url'
import { launchChromium, servePageScript, type ChromiumProfile, type StaticServer } from '@kai-sync/browser-harness'
import type { Page } from 'playwright-core'
import type { KaiPage } from './test-page'

declare global {
  /** In the test page only: this package and its dependencies (see test-page.ts). */
  var kai: KaiPage
  var kaiReady: boolean | undefined
}

/**
 * For this package's tests (Node side): a fresh Chromium profile per test
 * and the test page served on loopback. `pages(n)` opens n tabs of one
 * origin: they share IndexedDB and BroadcastChannel like real contexts.
 */
export interface TestBrowser {
  profile: ChromiumProfile
  url: string
  page(): Promise<Page>
  close(): Promise<void>
}

let server: Promise<StaticServer> | undefined

export async function testBrowser(): Promise<TestBrowser> {
  server ??= servePageScript(fileURLToPath(new URL('./test-page.ts', import.meta.url)))
  const { url } = await server
  const profile = await launchChromium()
  return {
    profile,
    url,
    async page() {
      const page = await profile.newPage(url)
      await page.waitForFunction(() => globalThis.kaiReady === true)
      return page
    },
    close: () => profile.close(),
  }
}

export async function closeServer(): Promise<void> {
  if (server) await (await server).close()
  server = undefined
}
