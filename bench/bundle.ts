// How much JavaScript the web app loads and how soon it is usable.
// 1. The gzipped size of each entry point's first load (app.js and every
//    chunk it imports statically; the chunks it imports when a view opens
//    apart), with its largest parts, from esbuild's metafile of the real build.
// 2. The time until the PWA's composer is usable in Chromium with the CPU
//    slowed 4× (a phone), against a blank page's load in the same run.
// 3. The time until the extension's popup draws its first frame.
// Run: pnpm bench bundle
import { readFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { gzipSync } from 'node:zlib'
import { launchChromium, serveStatic, type Page } from '@kai-sync/browser-harness'
import { DIST, buildWeb, type WebBuild } from '@kai-sync/web/build'
import { fmt, goal, median, table } from './lib'

type Metafile = WebBuild['pwa']

const RUNS = Number(process.env.BENCH_RUNS ?? 7)
const FIRST_LOAD_GOAL_KB = 60
const POPUP_FRAME_GOAL_MS = 150
const THROTTLE = 4
const kb = (bytes: number) => bytes / 1024
const gz = (file: string) => gzipSync(readFileSync(file)).length

/** What a page loads before it can run: the entry and, transitively, what it imports statically. */
function firstLoad(meta: Metafile, entry: string): { files: string[]; lazy: string[] } {
  const seen = new Set<string>()
  const lazy = new Set<string>()
  const visit = (out: string) => {
    if (seen.has(out)) return
    seen.add(out)
    for (const i of meta.outputs[out]!.imports) {
      if (i.external) continue
      if (i.kind === 'import-statement') visit(i.path)
      else if (i.kind === 'dynamic-import') lazy.add(i.path)
    }
  }
  visit(entry)
  // A chunk reached both ways is in the first load; the lazy ones pull their own imports.
  const lazyAll = new Set<string>()
  const visitLazy = (out: string) => {
    if (lazyAll.has(out) || seen.has(out)) return
    lazyAll.add(out)
    for (const i of meta.outputs[out]!.imports) if (!i.external) visitLazy(i.path)
  }
  for (const l of lazy) visitLazy(l)
  return { files: [...seen], lazy: [...lazyAll] }
}

/** The npm package or workspace package an input belongs to. */
function partOf(input: string): string {
  const npm = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(input)
  if (npm) return npm[1]!
  const ws = /(packages|apps)\/([^/]+)\//.exec(input)
  return ws ? `@kai-sync/${ws[2]}` : input
}

function report(name: string, meta: Metafile, out: string): number {
  const entry = Object.keys(meta.outputs).find((o) => meta.outputs[o]!.entryPoint !== undefined && o.endsWith('.js'))!
  const { files, lazy } = firstLoad(meta, entry)
  const size = (fs: string[]) => fs.reduce((s, f) => s + gz(resolve(f)), 0)
  const raw = (fs: string[]) => fs.reduce((s, f) => s + meta.outputs[f]!.bytes, 0)
  const first = size(files)
  const parts = new Map<string, number>()
  for (const f of files) for (const [input, v] of Object.entries(meta.outputs[f]!.inputs)) parts.set(partOf(input), (parts.get(partOf(input)) ?? 0) + v.bytesInOutput)
  const rows = [
    ['first load (gzipped)', fmt(kb(first), '') + ' KB', `${files.length} files: ${files.map((f) => relative(out, resolve(f))).join(', ')}`],
    ['first load (minified)', fmt(kb(raw(files)), '') + ' KB', ''],
    ['loaded when a view opens (gzipped)', fmt(kb(size(lazy)), '') + ' KB', `${lazy.length} chunks`],
    ...[...parts]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 10)
      .map(([p, bytes]) => [`  part: ${p}`, fmt(kb(bytes), '') + ' KB', 'minified, in the first load']),
  ]
  table(`${name}: app.js`, ['', 'size', ''], rows)
  return first
}

const web = await buildWeb()
const pwaDir = join(DIST, 'pwa')
const extDir = join(DIST, 'extension')
const pwaFirst = report('PWA', web.pwa, pwaDir)
const extFirst = report('extension (popup, tab, side panel)', web.extension, extDir)
table('other entry points', ['', 'gzipped'], [
  ['PWA sw.js', fmt(kb(gz(join(pwaDir, 'sw.js'))), '') + ' KB'],
  ['extension background.js', fmt(kb(gz(join(extDir, 'background.js'))), '') + ' KB'],
])
goal(`the PWA's first load is at most ${FIRST_LOAD_GOAL_KB} KB of gzipped JavaScript`, kb(pwaFirst) <= FIRST_LOAD_GOAL_KB, `${fmt(kb(pwaFirst), '')} KB`)
goal(`the popup's first load is at most ${FIRST_LOAD_GOAL_KB} KB of gzipped JavaScript`, kb(extFirst) <= FIRST_LOAD_GOAL_KB, `${fmt(kb(extFirst), '')} KB`)

// Records, from the page's own clock, when the composer can be typed into
// and when the first frame with content was drawn. Runs before the app.
const PROBE = `(() => {
  const mark = () => {
    const c = document.querySelector('[data-testid=composer]')
    if (c && !c.disabled && !globalThis.__composerAt) globalThis.__composerAt = performance.now()
    const w = document.querySelector('[data-testid=welcome-new]')
    if (w && !globalThis.__welcomeAt) globalThis.__welcomeAt = performance.now()
  }
  new MutationObserver(mark).observe(document, { childList: true, subtree: true, attributes: true })
})()`

async function throttled(page: Page): Promise<void> {
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: THROTTLE })
}

const blankMs: number[] = []
const composerMs: number[] = []
const server = await serveStatic({ dir: pwaDir })
// Another origin, so the app's service worker does not stand in front of it.
const blankServer = await serveStatic({ files: { '/blank.html': '<!doctype html><html><head><title>blank</title></head><body><p>blank</p></body></html>' } })
const pwa = await launchChromium({ viewport: { width: 390, height: 844 }, mobile: true })
await pwa.context.addInitScript(PROBE)
try {
  // A person who has used the app before: it opens their latest session.
  const setup = await pwa.newPage(`${server.url}/`)
  await setup.click('[data-testid=welcome-new]')
  await setup.waitForSelector('[data-testid=composer]:not([disabled])')
  await setup.close()
  for (let i = 0; i < RUNS; i++) {
    const blank = await pwa.newPage()
    await throttled(blank)
    await blank.goto(`${blankServer.url}/blank.html`, { waitUntil: 'load' })
    blankMs.push(await blank.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).loadEventEnd))
    await blank.close()
    const page = await pwa.newPage()
    await throttled(page)
    await page.goto(`${server.url}/`)
    await page.waitForFunction(() => (globalThis as { __composerAt?: number }).__composerAt, undefined, { timeout: 60_000 })
    composerMs.push(await page.evaluate(() => (globalThis as unknown as { __composerAt: number }).__composerAt))
    await page.close()
  }
} finally {
  await pwa.close()
  await server.close()
  await blankServer.close()
}
table(`PWA on a ${THROTTLE}× slower CPU (390×844, a returning person; median of ${RUNS})`, ['', 'ms from navigation'], [
  ['blank page loaded (baseline)', fmt(median(blankMs), 'ms')],
  ['composer usable', fmt(median(composerMs), 'ms')],
  ['composer usable, over the blank page', fmt(median(composerMs) - median(blankMs), 'ms')],
])

const firstPaint: number[] = []
const firstContent: number[] = []
const welcome: number[] = []
const ext = await launchChromium({ extension: extDir, viewport: { width: 360, height: 600 } })
await ext.context.addInitScript(PROBE)
try {
  for (let i = 0; i < RUNS; i++) {
    const popup = await ext.newPage(`chrome-extension://${ext.extensionId}/popup.html`)
    await popup.waitForFunction(() => (globalThis as { __welcomeAt?: number }).__welcomeAt || (globalThis as { __composerAt?: number }).__composerAt, undefined, { timeout: 60_000 })
    // Paint entries arrive a frame after the DOM they draw.
    await popup.waitForFunction(() => performance.getEntriesByName('first-contentful-paint').length > 0, undefined, { timeout: 60_000 })
    const t = await popup.evaluate(() => ({
      paint: performance.getEntriesByName('first-paint')[0]?.startTime ?? NaN,
      content: performance.getEntriesByName('first-contentful-paint')[0]!.startTime,
      shown: (globalThis as { __welcomeAt?: number }).__welcomeAt ?? (globalThis as unknown as { __composerAt: number }).__composerAt,
    }))
    firstPaint.push(t.paint)
    firstContent.push(t.content)
    welcome.push(t.shown)
    await popup.close()
  }
} finally {
  await ext.close()
}
table(`extension popup, unthrottled (360 px; median of ${RUNS})`, ['', 'ms from opening'], [
  ['first paint', fmt(median(firstPaint), 'ms')],
  ['first contentful paint (the first frame with the app in it)', fmt(median(firstContent), 'ms')],
  ['"Start a session" shown', fmt(median(welcome), 'ms')],
])
goal(`the popup draws its first frame within ${POPUP_FRAME_GOAL_MS} ms of opening`, median(firstContent) <= POPUP_FRAME_GOAL_MS, `first contentful paint ${fmt(median(firstContent), 'ms')}`)
