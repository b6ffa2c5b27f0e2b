import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchChromium, serveStatic, type ChromiumProfile, type Page, type StaticServer } from '@kai-sync/browser-harness'
import { buildWeb } from '@kai-sync/web/build'

/**
 * The built PWA on loopback and two tabs of one session in one Chromium:
 * tab A started it, tab B shows it. Cross-origin isolation gives both tabs
 * 5 µs timers instead of 100 µs; timeOrigin + now() is one clock for both.
 */
export async function twoTabs(): Promise<{ server: StaticServer; chromium: ChromiumProfile; a: Page; b: Page; id: string }> {
  await buildWeb()
  const server = await serveStatic({
    dir: join(fileURLToPath(new URL('../../apps/web/dist/pwa', import.meta.url))),
    headers: { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' },
  })
  const chromium = await launchChromium()
  // tsx compiles with esbuild's keepNames, which wraps named functions in
  // __name(); the functions the benches serialise into the pages lack it.
  await chromium.context.addInitScript('globalThis.__name = (f) => f')
  const a = await chromium.newPage(`${server.url}/`)
  await a.click('[data-testid=welcome-new]')
  await a.waitForSelector('[data-testid=composer]')
  const id = await a.evaluate(() => (globalThis as unknown as { kaiApp: { session: { sessionId: string } } }).kaiApp.session.sessionId)
  const b = await chromium.newPage(`${server.url}/#/s/${id}`)
  await b.waitForSelector('[data-testid=presence] [data-self=true]')
  return { server, chromium, a, b, id }
}
