import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createBenchRoom, type BenchRoom } from './frames'
import { Load, type PhaseResult } from './load'
import { processUsage, startKaiRelay, startStockRelay, type BenchServer } from './servers'

// bench/relay: the kai-sync relay (signatures checked, then not) against the
// stock @y/websocket-server 0.1.1 (alone, and with its y-leveldb persistence), in one run, under the same pre-encoded
// load: N rooms x 2 clients at rising rates, then closed-loop throughput,
// then (kai-relay only) 1,000 rooms x 2 clients held for a while.
//
//   pnpm bench relay   (or: tsx bench/relay/index.ts)
//   BENCH_ROOMS=100 BENCH_RATES=250,500,1000,2000,4000 BENCH_SECONDS=5 BENCH_HOLD_ROOMS=1000 BENCH_HOLD_SECONDS=60
//   BENCH_SERVERS=kai,stock (a subset; stock-leveldb is the stock relay with YPERSISTENCE), BENCH_RELAY_ARGS="--compact-stored-after 5000" (extra kai-relay flags)
//   BENCH_SERVERS=kai,kai-nometrics: signatures checked, with metrics and with --metrics off (issue 18's prom-client budget)

const ROOMS = Number(process.env.BENCH_ROOMS ?? 100)
const RATES = (process.env.BENCH_RATES ?? '250,500,1000,2000,4000').split(',').map(Number)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const HOLD_ROOMS = Number(process.env.BENCH_HOLD_ROOMS ?? 1000)
const HOLD_SECONDS = Number(process.env.BENCH_HOLD_SECONDS ?? 60)
const HOLD_RATE = Number(process.env.BENCH_HOLD_RATE ?? 1000)

interface Row extends PhaseResult {
  server: string
  cpuUsPerMessage: number
  cpuPercent: number
  rssMb: number
}

async function measure(server: BenchServer, phase: () => Promise<PhaseResult>): Promise<Row> {
  const before = processUsage(server.pid)
  const t = performance.now()
  const r = await phase()
  const seconds = (performance.now() - t) / 1000
  const after = processUsage(server.pid)
  const cpu = after.cpuSeconds - before.cpuSeconds
  return { server: server.name, ...r, cpuUsPerMessage: Math.round((cpu * 1e6) / Math.max(1, r.delivered)), cpuPercent: Math.round((cpu / seconds) * 100), rssMb: Math.round(after.rssMb) }
}

async function runServer(server: BenchServer, rooms: BenchRoom[]): Promise<Row[]> {
  const rows: Row[] = []
  const load = await Load.connect(server, rooms)
  try {
    // Warm-up, not recorded: JIT, first storage writes, socket buffers.
    await load.prepare(load.framesFor(RATES[0]!, 2))
    await load.openLoop(RATES[0]!, 2)
    for (const rate of RATES) {
      await load.prepare(load.framesFor(rate, SECONDS))
      const row = await measure(server, () => load.openLoop(rate, SECONDS))
      rows.push(row)
      log(row)
    }
    // Enough frames for 25k msg/s; a server faster than that runs out early and says so (lost = 0, fewer sent).
    await load.prepare(load.framesFor(25_000, SECONDS))
    const closed = await measure(server, () => load.closedLoop(8, SECONDS))
    rows.push(closed)
    log(closed)
  } finally {
    load.close()
  }
  return rows
}

async function hold(server: BenchServer): Promise<Row> {
  const rooms = await Promise.all(Array.from({ length: HOLD_ROOMS }, () => createBenchRoom()))
  const load = await Load.connect(server, rooms)
  try {
    await load.prepare(load.framesFor(HOLD_RATE, HOLD_SECONDS))
    const row = await measure(server, () => load.openLoop(HOLD_RATE, HOLD_SECONDS, 3000))
    log(row)
    return row
  } finally {
    load.close()
  }
}

function log(r: Row): void {
  process.stderr.write(
    `${r.server.padEnd(34)} offered ${String(r.offeredPerSecond).padStart(11)}  delivered ${String(r.deliveredPerSecond).padStart(6)}/s  p50 ${r.p50Ms} ms  p99 ${r.p99Ms} ms  lost ${r.lost}  errors ${r.errors}  cpu ${r.cpuUsPerMessage} µs/msg (${r.cpuPercent} %)  rss ${r.rssMb} MB\n`,
  )
}

function table(rows: Row[]): string {
  const lines = ['| server | offered msg/s | delivered msg/s | p50 ms | p99 ms | lost | server CPU µs/msg | server CPU % | RSS MB |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|']
  for (const r of rows) lines.push(`| ${r.server} | ${r.offeredPerSecond} | ${r.deliveredPerSecond} | ${r.p50Ms} | ${r.p99Ms} | ${r.lost} | ${r.cpuUsPerMessage} | ${r.cpuPercent} | ${r.rssMb} |`)
  return lines.join('\n')
}

async function main(): Promise<void> {
  const starters: Record<string, () => Promise<BenchServer>> = {
    stock: () => startStockRelay(),
    'stock-leveldb': () => startStockRelay({ persistence: true }),
    kai: () => startKaiRelay({ verify: true }),
    'kai-unchecked': () => startKaiRelay({ verify: false }),
    'kai-nometrics': () => startKaiRelay({ verify: true, metrics: false }),
  }
  // BENCH_SERVERS=kai-unchecked,stock runs a subset (while profiling, say).
  const chosen = (process.env.BENCH_SERVERS ?? 'stock,stock-leveldb,kai,kai-unchecked').split(',')
  const unknown = chosen.filter((name) => !Object.hasOwn(starters, name))
  if (unknown.length > 0) throw new Error(`BENCH_SERVERS: unknown ${unknown.join(', ')} (known: ${Object.keys(starters).join(', ')})`)
  const rooms = await Promise.all(Array.from({ length: ROOMS }, () => createBenchRoom()))
  const rows: Row[] = []
  for (const start of chosen.map((name) => starters[name]!)) {
    const server = await start()
    try {
      rows.push(...(await runServer(server, rooms)))
    } finally {
      await server.stop()
    }
  }
  let held: Row | null = null
  if (HOLD_SECONDS > 0) {
    const server = await startKaiRelay({ verify: true })
    try {
      held = await hold(server)
    } finally {
      await server.stop()
    }
  }
  const find = (name: string, offered: PhaseResult['offeredPerSecond']) => rows.find((r) => r.server === name && r.offeredPerSecond === offered)
  const closed = (name: string) => find(name, 'closed loop')?.deliveredPerSecond ?? 0
  const closedCpu = (name: string) => find(name, 'closed loop')?.cpuUsPerMessage ?? 0
  const [STOCK, STOCK_LEVELDB, KAI, UNCHECKED, UNMETERED] = ['@y/websocket-server 0.1.1', '@y/websocket-server 0.1.1 + y-leveldb', 'kai-relay', 'kai-relay (no signature checks)', 'kai-relay (metrics off)']
  const x = (a: number, b: number) => `${(a / b).toFixed(2)}x`
  const summary: string[] = []
  // Issue 17's goals, against the stock relay of the same run.
  if (find(STOCK, 'closed loop') && find(KAI, 'closed loop')) {
    const stock = closed(STOCK)
    const stored = find(STOCK_LEVELDB, 'closed loop') ? `; stock + y-leveldb ${closed(STOCK_LEVELDB)} msg/s (kai-relay ${x(closed(KAI), closed(STOCK_LEVELDB))} of it)` : ''
    summary.push(goalLine('closed loop, signatures checked, at least 1.0x stock', closed(KAI) >= stock, `${closed(KAI)} vs ${stock} msg/s: ${x(closed(KAI), stock)}${stored}`))
    if (find(UNCHECKED, 'closed loop')) summary.push(goalLine('closed loop, no signature checks, at least 1.1x stock', closed(UNCHECKED) >= 1.1 * stock, `${closed(UNCHECKED)} vs ${stock} msg/s: ${x(closed(UNCHECKED), stock)}`))
    const rates = RATES.filter((r) => find(STOCK, r) && find(KAI, r))
    const worst = (key: 'p50Ms' | 'p99Ms') => rates.map((r) => ({ r, ratio: find(KAI, r)![key] / find(STOCK, r)![key] })).sort((a, b) => b.ratio - a.ratio)[0]
    for (const [key, label] of [['p50Ms', 'p50'], ['p99Ms', 'p99']] as const) {
      const w = worst(key)
      if (w) summary.push(goalLine(`${label} at most 2x stock at every rate`, w.ratio <= 2, `worst at ${w.r} msg/s: ${find(KAI, w.r)![key]} vs ${find(STOCK, w.r)![key]} ms, ${w.ratio.toFixed(2)}x`))
    }
    const low = find(KAI, RATES[0]!)
    const lowStock = find(STOCK, RATES[0]!)
    if (low && lowStock) summary.push(goalLine(`server CPU per message at ${RATES[0]} msg/s at most 1.5x stock`, low.cpuUsPerMessage <= 1.5 * lowStock.cpuUsPerMessage, `${low.cpuUsPerMessage} vs ${lowStock.cpuUsPerMessage} µs: ${x(low.cpuUsPerMessage, lowStock.cpuUsPerMessage)}`))
    const rss = (name: string) => find(name, 'closed loop')!.rssMb
    summary.push(goalLine('RSS in the closed loop at most 1.2x stock', rss(KAI) <= 1.2 * rss(STOCK), `${rss(KAI)} vs ${rss(STOCK)} MB: ${x(rss(KAI), rss(STOCK))}`))
  }
  if (find(KAI, 'closed loop') && find(UNMETERED, 'closed loop')) {
    const cost = (1 - closed(KAI) / closed(UNMETERED)) * 100
    summary.push(goalLine("metrics cost at most 2% of throughput (issue 18)", cost <= 2, `closed loop ${closed(KAI)} msg/s with metrics, ${closed(UNMETERED)} off: ${cost.toFixed(1)}%; server CPU ${closedCpu(KAI)} vs ${closedCpu(UNMETERED)} µs/msg`))
  }
  summary.push(held ? `${HOLD_ROOMS} rooms x 2 clients, ${HOLD_RATE} msg/s for ${HOLD_SECONDS} s: ${held.delivered}/${held.sent} delivered, ${held.lost} lost, ${held.errors} connection errors, p99 ${held.p99Ms} ms, RSS ${held.rssMb} MB` : 'hold phase skipped')
  const report = `${table(held ? [...rows, held] : rows)}\n\n${summary.join('\n')}\n`
  process.stdout.write(`\n${ROOMS} rooms x 2 clients, ${SECONDS} s per rate, ~800-byte envelopes\n\n${report}`)
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'results')
  mkdirSync(out, { recursive: true })
  writeFileSync(join(out, `relay-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify({ rooms: ROOMS, seconds: SECONDS, rows, held }, null, 2))
}

function goalLine(what: string, ok: boolean, detail: string): string {
  return `${ok ? 'MET' : 'MISSED'}: ${what} (${detail})`
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`)
  process.exit(1)
})
