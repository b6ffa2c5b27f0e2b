// How much JavaScript the web app loads and how soon it is usable.
// 1. The gzipped size of what each entry point loads first (app.js and its
//    static imports: the app shell, whose composer takes typing and sending
//    for the session last shown), before the session view shows (also the
//    app chunk app.js fetches at once), and when a view opens, with the
//    largest parts, from esbuild's metafile of the real build.
// 2. The time until the PWA's composer is usable in Chromium with the CPU
//    slowed 4× (a phone), and until the session view shows, against a blank
//    page's load in the same run.
// 3. The time until the extension's popup draws its first frame.
// Run: pnpm bench bundle
import { readFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { gzipSync } from 'node:zlib'
import { launchChromium, serveStatic, type Page } from '@kai-sync/browser-harness'
import { DIST, appEntry, buildWeb, type WebBuild } from '@kai-sync/web/build'
import { fmt, goal, median, table } from './lib'

type Metafile = WebBuild['pwa']

const RUNS = Number(process.env.BENCH_RUNS ?? 7)
const FIRST_LOAD_GOAL_KB = 60
const POPUP_FRAME_GOAL_MS = 150
const THROTTLE = 4
const kb = (bytes: number) => bytes / 1024
const gz = (file: string) => gzipSync(readFileSync(file)).length

/**
 * What a page loads, in three steps. The first load: app.js and what it
 * imports statically (the app shell, with the composer of the session last
 * shown: apps/web/src/early/). The session view: also the chunk app.js
 * imports at once (the app: engine, yjs, crypto, schemas) and its static
 * imports, all needed before the session's history shows. A view: the
 * chunks the app imports when a view opens (the rest).
 */
function loads(meta: Metafile, entry: string): { frame: string[]; session: string[]; lazy: string[] } {
  const closure = (from: string[], into: Set<string>) => {
    const visit = (out: string) => {
      if (into.has(out)) return
      into.add(out)
      for (const i of meta.outputs[out]!.imports) if (!i.external && i.kind === 'import-statement') visit(i.path)
    }
    from.forEach(visit)
    return into
  }
  const dynamicOf = (outs: Iterable<string>) => [...outs].flatMap((o) => meta.outputs[o]!.imports.filter((i) => !i.external && i.kind === 'dynamic-import').map((i) => i.path))
  const frame = closure([entry], new Set())
  const session = closure(dynamicOf([entry]), new Set(frame))
  // A chunk reached both ways is in the earlier step; the lazy ones pull their own imports.
  const lazy = new Set<string>()
  const visitLazy = (out: string) => {
    if (lazy.has(out) || session.has(out)) return
    lazy.add(out)
    for (const i of meta.outputs[out]!.imports) if (!i.external) visitLazy(i.path)
  }
  dynamicOf(session).forEach(visitLazy)
  return { frame: [...frame], session: [...session], lazy: [...lazy] }
}

/** The npm package or workspace package an input belongs to. */
function partOf(input: string): string {
  const npm = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(input)
  if (npm) return npm[1]!
  const ws = /(packages|apps)\/([^/]+)\//.exec(input)
  return ws ? `@kai-sync/${ws[2]}` : input
}

function report(name: string, meta: Metafile, out: string): { frame: number; session: number } {
  const entry = appEntry(meta)
  const { frame, session, lazy } = loads(meta, entry)
  const size = (fs: string[]) => fs.reduce((s, f) => s + gz(resolve(f)), 0)
  const raw = (fs: string[]) => fs.reduce((s, f) => s + meta.outputs[f]!.bytes, 0)
  const partsOf = (fs: string[]) => {
    const parts = new Map<string, number>()
    for (const f of fs) for (const [input, v] of Object.entries(meta.outputs[f]!.inputs)) parts.set(partOf(input), (parts.get(partOf(input)) ?? 0) + v.bytesInOutput)
    return [...parts].sort((a, b) => b[1] - a[1])
  }
  const files = (fs: string[]) => `${fs.length} files: ${fs.map((f) => relative(out, resolve(f))).join(', ')}`
  const rows = [
    ['first load: the shell, its composer takes typing and sending (gzipped)', fmt(kb(size(frame)), '') + ' KB', files(frame)],
    ['first load (minified)', fmt(kb(raw(frame)), '') + ' KB', ''],
    ...partsOf(frame).map(([p, bytes]) => [`  part: ${p}`, fmt(kb(bytes), '') + ' KB', 'minified, in the first load']),
    ['the session view shows: shell + app (gzipped)', fmt(kb(size(session)), '') + ' KB', files(session)],
    ['the session view (minified)', fmt(kb(raw(session)), '') + ' KB', ''],
    ...partsOf(session)
      .slice(0, 10)
      .map(([p, bytes]) => [`  part: ${p}`, fmt(kb(bytes), '') + ' KB', 'minified, before the session view shows']),
    ['loaded when a view opens (gzipped)', fmt(kb(size(lazy)), '') + ' KB', `${lazy.length} chunks`],
  ]
  table(`${name}: app.js`, ['', 'size', ''], rows)
  return { frame: size(frame), session: size(session) }
}

const web = await buildWeb()
const pwaDir = join(DIST, 'pwa')
const extDir = join(DIST, 'extension')
const pwaLoad = report('PWA', web.pwa, pwaDir)
const extLoad = report('extension (popup, tab, side panel)', web.extension, extDir)
table('other entry points', ['', 'gzipped'], [
  ['PWA sw.js', fmt(kb(gz(join(pwaDir, 'sw.js'))), '') + ' KB'],
  ['extension background.js', fmt(kb(gz(join(extDir, 'background.js'))), '') + ' KB'],
])
// The goal is the first load: until the composer takes typing and sending
// (the shell's, for a returning person; what is sent is kept sealed until
// the session takes it). The session view's own load is said beside it.
for (const [what, load] of [['PWA', pwaLoad], ['popup', extLoad]] as const) {
  goal(`the ${what}'s first load (until its composer takes typing and sending) needs at most ${FIRST_LOAD_GOAL_KB} KB of gzipped JavaScript`, kb(load.frame) <= FIRST_LOAD_GOAL_KB, `${fmt(kb(load.frame), '')} KB; the session view ${fmt(kb(load.session), '')} KB`)
}
// The sizes need no browser: BENCH_SIZES_ONLY=1 stops here (quick to re-run while trimming).
if (process.env.BENCH_SIZES_ONLY === '1') process.exit(0)

// Records, from the page's own clock, when a composer can be typed into
// (the shell's, or the session view's), when the session view's is there,
// and when the first frame with content was drawn. Runs before the app.
const PROBE = `(() => {
  const mark = () => {
    const e = document.querySelector('[data-testid=early-composer]')
    if (e && !e.disabled && !globalThis.__composerAt) globalThis.__composerAt = performance.now()
    const c = document.querySelector('[data-testid=composer]')
    if (c && !c.disabled && !globalThis.__composerAt) globalThis.__composerAt = performance.now()
    if (c && !c.disabled && !globalThis.__sessionAt) globalThis.__sessionAt = performance.now()
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
const sessionMs: number[] = []
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
  await setup.waitForFunction(() => localStorage.getItem('kai-last-session') !== null)
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
    await page.waitForFunction(() => (globalThis as { __sessionAt?: number }).__sessionAt, undefined, { timeout: 60_000 })
    const t = await page.evaluate(() => {
      const g = globalThis as unknown as { __composerAt: number; __sessionAt: number }
      return { composer: g.__composerAt, session: g.__sessionAt }
    })
    composerMs.push(t.composer)
    sessionMs.push(t.session)
    await page.close()
  }
} finally {
  await pwa.close()
  await server.close()
  await blankServer.close()
}
table(`PWA on a ${THROTTLE}× slower CPU (390×844, a returning person; median of ${RUNS})`, ['', 'ms from navigation'], [
  ['blank page loaded (baseline)', fmt(median(blankMs), 'ms')],
  ['composer usable (takes typing and sending)', fmt(median(composerMs), 'ms')],
  ['composer usable, over the blank page', fmt(median(composerMs) - median(blankMs), 'ms')],
  ['the session view shows (history, settings)', fmt(median(sessionMs), 'ms')],
  ['the session view, over the blank page', fmt(median(sessionMs) - median(blankMs), 'ms')],
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
