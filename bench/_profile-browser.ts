// Not a benchmark (run-all skips files starting with _): profiles both tabs
// of bench/browser's tab-to-tab run (tab A appends, tab B receives) with
// Chromium's sampling profiler, for finding where an append's time goes.
// Builds the app unminified so names are readable.
//
//   KAI_WEB_MINIFY=0 [PROFILE_OUT=/tmp] node_modules/.bin/tsx bench/_profile-browser.ts
//
// Prints each tab's self and inclusive time of its heaviest functions, as
// a share of the tab's busy (not idle) samples.
import type { Page } from '@kai-sync/browser-harness'
import { twoTabs } from './browser/two-tabs'

const N = Number(process.env.BENCH_SAMPLES ?? 300)
type Win = { kaiApp: { session: { sessionId: string; engine: { session: import('@kai-sync/model').SessionDoc } } | null } }

type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
type Profile = { nodes: Node[]; samples: number[]; timeDeltas: number[] }

function summary(name: string, profile: Profile): void {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of nodes.values()) for (const c of n.children ?? []) parent.set(c, n.id)
  const label = (n: Node) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').pop() ?? ''}:${n.callFrame.lineNumber + 1}`.trim()
  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  let total = 0
  profile.samples.forEach((id, i) => {
    const node = nodes.get(id)!
    if (node.callFrame.functionName === '(idle)') return
    const t = profile.timeDeltas[i] ?? 0
    total += t
    self.set(label(node), (self.get(label(node)) ?? 0) + t)
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) seen.add(label(nodes.get(at)!))
    for (const l of seen) inclusive.set(l, (inclusive.get(l) ?? 0) + t)
  })
  const top = (m: Map<string, number>, k: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([l, t]) => `${((100 * t) / total).toFixed(1).padStart(5)}% ${(t / 1000 / N).toFixed(3)} ms/append  ${l}`)
      .join('\n')
  console.log(`\n## ${name}: busy ${(total / 1000 / N).toFixed(3)} ms per append\n\nself, top 25\n${top(self, 25)}\n\ninclusive, top 45\n${top(inclusive, 45)}`)
}

async function profiled(page: Page) {
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Profiler.enable')
  await cdp.send('Profiler.setSamplingInterval', { interval: 50 })
  return {
    start: () => cdp.send('Profiler.start'),
    stop: async () => (await cdp.send('Profiler.stop')).profile as unknown as Profile,
  }
}

const { server, chromium, a, b } = await twoTabs()
try {
  const append = (from: number, n: number) =>
    a.evaluate(
      async ({ from, n }: { from: number; n: number }) => {
        const doc = (globalThis as unknown as Win).kaiApp.session!.engine.session
        for (let i = from; i < from + n; i++) {
          doc.appendMessage({ id: `bench-${i}`, role: 'user', content: `message ${i} `.padEnd(200, '·'), metadata: { sentAt: performance.timeOrigin + performance.now() } })
          await new Promise((r) => setTimeout(r, 80))
        }
      },
      { from, n },
    )
  await append(0, 100) // warm-up, not profiled
  const pa = await profiled(a)
  const pb = await profiled(b)
  await pa.start()
  await pb.start()
  await append(100, N)
  await new Promise((r) => setTimeout(r, 500))
  const [profileA, profileB] = [await pa.stop(), await pb.stop()]
  summary('tab A (appends, seals, posts)', profileA)
  summary('tab B (receives, verifies, opens, applies, draws)', profileB)
  // PROFILE_OUT=dir keeps both as .cpuprofile files (DevTools opens them).
  const out = process.env.PROFILE_OUT
  if (out) {
    const { writeFileSync } = await import('node:fs')
    writeFileSync(`${out}/tab-a.cpuprofile`, JSON.stringify(profileA))
    writeFileSync(`${out}/tab-b.cpuprofile`, JSON.stringify(profileB))
  }
} finally {
  await chromium.close()
  await server.close()
}
