// Tab-to-tab propagation in real Chromium: from an append in tab A's
// session to the message being in tab B's session (and drawn in B's page),
// beside raw BroadcastChannel latency measured in the same run, between
// the same two tabs of the built PWA. Run: pnpm bench browser
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchChromium, serveStatic } from '@kai-sync/browser-harness'
import { buildWeb } from '../../apps/web/build/build'
import { fmt, goal, percentile, table } from '../lib'

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200)
const RAW_SAMPLES = 500
// Longer than the engine's 60 ms batch window, so every append is a lone
// change, sealed at once: the latency is crypto plus BroadcastChannel.
const SPACING_MS = 80

interface Win {
  kaiApp: { session: { sessionId: string; engine: { session: import('@kai-sync/model').SessionDoc } } | null }
  bench: { raw: number[]; session: number[]; shown: number[] }
}

await buildWeb()
// Cross-origin isolation gives both tabs 5 µs timers instead of 100 µs;
// timeOrigin + now() is one clock for both tabs of one browser.
const server = await serveStatic({
  dir: join(fileURLToPath(new URL('../../apps/web/dist/pwa', import.meta.url))),
  headers: { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' },
})
const chromium = await launchChromium()
// tsx compiles with esbuild's keepNames, which wraps named functions in
// __name(); the functions below are serialised into the pages, which lack it.
await chromium.context.addInitScript('globalThis.__name = (f) => f')
try {
  const a = await chromium.newPage(`${server.url}/`)
  await a.click('[data-testid=welcome-new]')
  await a.waitForSelector('[data-testid=composer]')
  const id = await a.evaluate(() => (globalThis as unknown as Win).kaiApp.session!.sessionId)
  const b = await chromium.newPage(`${server.url}/#/s/${id}`)
  await b.waitForSelector('[data-testid=presence] [data-self=true]')
  const isolated = await b.evaluate(() => crossOriginIsolated)

  // B records, on one clock: raw channel arrivals, session arrivals, and when each message is drawn.
  await b.evaluate(() => {
    const w = globalThis as unknown as Win
    const clock = () => performance.timeOrigin + performance.now()
    const bench = (w.bench = { raw: [] as number[], session: [] as number[], shown: [] as number[] })
    new BroadcastChannel('bench-raw').onmessage = (e) => bench.raw.push(clock() - (e.data as number))
    const doc = w.kaiApp.session!.engine.session
    const sentAt = new Map<string, number>()
    doc.on('change', (change) => {
      for (const mid of change.messages) {
        const m = mid.startsWith('bench-') && !sentAt.has(mid) ? doc.message(mid) : undefined
        if (!m) continue
        const t = m.metadata?.sentAt as number
        sentAt.set(mid, t)
        bench.session.push(clock() - t)
      }
    })
    new MutationObserver((records) => {
      for (const r of records)
        for (const node of r.addedNodes) {
          const mid = node instanceof HTMLElement ? node.dataset.messageId : undefined
          if (mid && sentAt.has(mid)) bench.shown.push(clock() - sentAt.get(mid)!)
        }
    }).observe(document.querySelector('[data-testid=history]')!, { childList: true, subtree: true })
  })

  await a.evaluate(async (n: number) => {
    const channel = new BroadcastChannel('bench-raw')
    for (let i = 0; i < n; i++) {
      channel.postMessage(performance.timeOrigin + performance.now())
      await new Promise((r) => setTimeout(r, 4))
    }
  }, RAW_SAMPLES)
  await a.evaluate(
    async ({ n, spacing }: { n: number; spacing: number }) => {
      const doc = (globalThis as unknown as Win).kaiApp.session!.engine.session
      for (let i = 0; i < n; i++) {
        doc.appendMessage({ id: `bench-${i}`, role: 'user', content: `message ${i} `.padEnd(200, '·'), metadata: { sentAt: performance.timeOrigin + performance.now() } })
        await new Promise((r) => setTimeout(r, spacing))
      }
    },
    { n: SAMPLES, spacing: SPACING_MS },
  )
  await b.waitForFunction((n: number) => (globalThis as unknown as Win).bench.shown.length >= n, SAMPLES, { timeout: 30_000 })
  const { raw, session, shown } = await b.evaluate(() => (globalThis as unknown as Win).bench)

  const row = (name: string, xs: number[]) => [name, String(xs.length), fmt(percentile(xs, 50), 'ms'), fmt(percentile(xs, 90), 'ms'), fmt(percentile(xs, 99), 'ms')]
  table(
    `Tab to tab in Chromium (two tabs of the PWA${isolated ? ', 5 µs timers' : ', 100 µs timers'})`,
    ['path', 'samples', 'p50', 'p90', 'p99'],
    [
      row('raw BroadcastChannel (baseline)', raw),
      row('append in A → in B\'s session (seal, y-indexeddb, BroadcastChannel, verify, open, apply)', session),
      row('append in A → drawn in B\'s page', shown),
    ],
  )
  const p50 = percentile(session, 50)
  goal('tab-to-tab propagation p50 at most 2 ms', p50 <= 2, `${fmt(p50, 'ms')}; raw BroadcastChannel ${fmt(percentile(raw, 50), 'ms')}`)
} finally {
  await chromium.close()
  await server.close()
}
