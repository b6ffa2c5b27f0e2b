// Not a benchmark (run-all skips files starting with _): at one open-loop
// rate, the latency clients see beside the relay's own histograms of the
// same updates (arrival to stored, arrival to relayed, from /metrics), to
// tell the relay's share of a p50 from the sockets' and the clients'.
//
//   BENCH_RATE=1000 BENCH_SECONDS=5 node_modules/.bin/tsx bench/_latency-probe.ts
import { Load } from './relay/load'
import { createBenchRoom } from './relay/frames'
import { startKaiRelay } from './relay/servers'

const RATE = Number(process.env.BENCH_RATE ?? 1000)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const HISTOGRAMS = ['kai_relay_update_stored_seconds', 'kai_relay_update_relayed_seconds']

/** Each histogram's cumulative bucket counts, by upper bound. */
async function buckets(url: string): Promise<Map<string, Map<string, number>>> {
  const text = await (await fetch(url)).text()
  const out = new Map<string, Map<string, number>>(HISTOGRAMS.map((h) => [h, new Map()]))
  for (const line of text.split('\n')) {
    const m = /^(\w+)_bucket\{le="([^"]+)"\} (\d+)/.exec(line)
    if (m && out.has(m[1]!)) out.get(m[1]!)!.set(m[2]!, Number(m[3]))
  }
  return out
}

const server = await startKaiRelay({ verify: true })
const rooms = await Promise.all(Array.from({ length: 100 }, () => createBenchRoom()))
const load = await Load.connect(server, rooms)
try {
  await load.prepare(load.framesFor(RATE, 3))
  await load.openLoop(RATE, 3)
  const metrics = `${server.url.replace('ws://', 'http://')}/metrics`
  const before = await buckets(metrics)
  await load.prepare(load.framesFor(RATE, SECONDS))
  const r = await load.openLoop(RATE, SECONDS)
  const after = await buckets(metrics)
  console.log(`${RATE} msg/s: clients see p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`)
  for (const h of HISTOGRAMS) {
    const counts = [...after.get(h)!].map(([le, n]) => [le, n - (before.get(h)!.get(le) ?? 0)] as const)
    const total = counts.find(([le]) => le === '+Inf')?.[1] ?? 0
    const shares = counts.filter(([le]) => Number(le) <= 0.01).map(([le, n]) => `≤${Number(le) * 1000} ms ${((100 * n) / Math.max(1, total)).toFixed(0)}%`)
    console.log(`  ${h}: ${shares.join(', ')}`)
  }
} finally {
  load.close()
  await server.stop()
}
