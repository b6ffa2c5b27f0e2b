// The cost of one append in the real PWA's page as the history grows:
// from SessionDoc.appendMessage in the page to the new message being drawn
// (the next frame with its row in the DOM), with 10 messages (the baseline,
// same run, same page), 1,000 and 10,000. The history draws a window of
// the latest 300 (older ones load on scroll or "load earlier"), so the
// figure should stay flat. Run: pnpm bench history-page
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchChromium, serveStatic } from '@kai-sync/browser-harness'
import { buildWeb } from '@kai-sync/web/build'
import { fmt, median, percentile, table } from './lib'

const SIZES = (process.env.BENCH_SIZES ?? '10,1000,10000').split(',').map(Number)
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 60)
const WARMUP = 10

interface Win {
  kaiApp: { session: { engine: { session: import('@kai-sync/model').SessionDoc } } | null }
}

await buildWeb()
const server = await serveStatic({ dir: join(fileURLToPath(new URL('../apps/web/dist/pwa', import.meta.url))) })
const chromium = await launchChromium()
await chromium.context.addInitScript('globalThis.__name = (f) => f')
try {
  const page = await chromium.newPage(`${server.url}/`)
  await page.click('[data-testid=welcome-new]')
  await page.waitForSelector('[data-testid=composer]')
  const rows: string[][] = []
  let baseline = NaN
  let have = 0
  for (const size of SIZES) {
    // Fill to `size` in one transaction, then let it draw.
    await page.evaluate(
      ({ from, to }) => {
        const doc = (globalThis as unknown as Win).kaiApp.session!.engine.session
        doc.transact(() => {
          for (let i = from; i < to; i++) doc.appendMessage({ id: `fill-${i}`, role: i % 2 ? 'assistant' : 'user', content: `filler message ${i} `.repeat(8), timestamp: 1_000_000 + i })
        })
      },
      { from: have, to: size },
    )
    have = size
    await page.waitForSelector(`[data-message-id=fill-${size - 1}]`, { timeout: 120_000 })
    const r = await page.evaluate(
      async ({ size, samples, warmup }) => {
        const doc = (globalThis as unknown as Win).kaiApp.session!.engine.session
        const frame = () => new Promise<void>((res) => requestAnimationFrame(() => res()))
        const drawn: number[] = []
        const js: number[] = []
        for (let i = 0; i < warmup + samples; i++) {
          const id = `bench-${size}-${i}`
          const t0 = performance.now()
          doc.appendMessage({ id, role: 'user', content: `bench message ${i}` })
          const t1 = performance.now()
          while (!document.querySelector(`[data-message-id="${id}"]`)) await frame()
          const t2 = performance.now()
          if (i >= warmup) {
            js.push(t1 - t0)
            drawn.push(t2 - t0)
          }
          await frame()
        }
        return { drawn, js, inDom: document.querySelectorAll('[data-testid=history] .message').length }
      },
      { size, samples: SAMPLES, warmup: WARMUP },
    )
    have += SAMPLES + WARMUP
    const p50 = median(r.drawn)
    if (Number.isNaN(baseline)) baseline = p50
    rows.push([`${size.toLocaleString('en-US')} messages`, fmt(median(r.js), 'ms'), fmt(p50, 'ms'), fmt(percentile(r.drawn, 95), 'ms'), String(r.inDom), fmt(p50 / baseline, 'x')])
  }
  table(`One append in the PWA's page, append() to drawn (median of ${SAMPLES}; baseline: the first row, same page)`, ['history', 'append() JS', 'drawn p50', 'drawn p95', 'rows in DOM', 'vs baseline'], rows)
} finally {
  await chromium.close()
  await server.close()
}
