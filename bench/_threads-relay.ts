// Not a benchmark (run-all skips files starting with _): which of a relay's
// threads spend its CPU at one open-loop rate (main, the verify worker,
// libuv's pool, V8's helpers), read per thread from /proc.
//
//   BENCH_RATE=250 BENCH_SECONDS=10 [BENCH_SERVERS=stock,kai,kai-base BENCH_BASE=../other] node_modules/.bin/tsx bench/_threads-relay.ts
import { readdirSync, readFileSync } from 'node:fs'
import { Load } from './relay/load'
import { createBenchRoom } from './relay/frames'
import { startKaiRelay, startStockRelay, statCpuSeconds } from './relay/servers'

const RATE = Number(process.env.BENCH_RATE ?? 250)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)

function threads(pid: number): Map<string, number> {
  const out = new Map<string, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    const key = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    out.set(key, (out.get(key) ?? 0) + statCpuSeconds(stat))
  }
  return out
}

const only = process.env.BENCH_SERVERS?.split(',')
// BENCH_BASE=<another checkout>: its relay too, as kai-base, for a before and after.
const base = process.env.BENCH_BASE
const starters: Record<string, () => ReturnType<typeof startKaiRelay>> = { stock: () => startStockRelay(), kai: () => startKaiRelay({ verify: true }) }
if (base) starters['kai-base'] = () => startKaiRelay({ verify: true, checkout: base })
for (const [name, start] of Object.entries(starters)) {
  if (only && !only.includes(name)) continue
  const server = await start()
  const rooms = await Promise.all(Array.from({ length: 100 }, () => createBenchRoom()))
  const load = await Load.connect(server, rooms)
  try {
    await load.prepare(load.framesFor(RATE, 3))
    await load.openLoop(RATE, 3)
    await load.prepare(load.framesFor(RATE, SECONDS))
    const before = threads(server.pid)
    const r = await load.openLoop(RATE, SECONDS)
    const after = threads(server.pid)
    console.log(`\n${server.name}: ${r.delivered} delivered`)
    for (const [name, cpu] of after) {
      const used = cpu - (before.get(name) ?? 0)
      if (used > 0) console.log(`  ${name.padEnd(18)} ${((used * 1e6) / r.delivered).toFixed(0).padStart(5)} µs/msg`)
    }
  } finally {
    load.close()
    await server.stop()
  }
}
