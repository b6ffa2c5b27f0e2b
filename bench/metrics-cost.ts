import { FrameTapes, createBenchRoom, type BenchRoom } from './relay/frames'
import { Load } from './relay/load'
import { processUsage, startKaiRelay } from './relay/servers'
import { fmt, goal, median, percentile, table } from './lib'

// What kai-relay's prom-client metrics cost (issue 18's budget: at most 2%
// of throughput). One closed loop of `pnpm bench relay` differs by more than
// that from one run to the next on a shared 2-core machine, so a single
// with/without pair cannot tell 2% from noise. This runs PAIRS pairs of the
// same closed loop (signatures checked), with metrics and with
// `--metrics off`, in A-B B-A order, and takes the median over each two
// pairs (A-B-B-A: a drift of the machine that is steady over the four runs
// cancels out; within one pair it falls on the second run). Each run sends
// the same pre-signed frames to a fresh relay (FrameTapes), so a run costs
// its measured seconds and the relay's start, not the signing.
//
//   pnpm bench metrics-cost   (or: tsx bench/metrics-cost.ts)
//   BENCH_PAIRS=12 BENCH_SECONDS=8 BENCH_ROOMS=100

const PAIRS = 2 * Math.ceil(Number(process.env.BENCH_PAIRS ?? 12) / 2)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8)
const ROOMS = Number(process.env.BENCH_ROOMS ?? 100)
const BUDGET = 0.02

interface Run {
  metrics: boolean
  perSecond: number
  cpuUsPerMessage: number
}

async function closedLoop(metrics: boolean, rooms: BenchRoom[], tapes: FrameTapes): Promise<Run> {
  const server = await startKaiRelay({ verify: true, metrics })
  try {
    const load = await Load.connect(server, rooms, tapes)
    try {
      // Warm-up, not recorded: JIT, first storage writes, socket buffers.
      await load.prepare(load.framesFor(250, 2))
      await load.openLoop(250, 2)
      await load.prepare(load.framesFor(25_000, SECONDS))
      const before = processUsage(server.pid)
      const r = await load.closedLoop(8, SECONDS)
      const cpu = processUsage(server.pid).cpuSeconds - before.cpuSeconds
      if (r.lost > 0 || r.errors > 0) throw new Error(`closed loop lost ${r.lost} and had ${r.errors} errors (metrics ${metrics ? 'on' : 'off'})`)
      const run = { metrics, perSecond: r.deliveredPerSecond, cpuUsPerMessage: (cpu * 1e6) / Math.max(1, r.delivered) }
      process.stderr.write(`metrics ${metrics ? 'on ' : 'off'}  ${run.perSecond} msg/s  ${run.cpuUsPerMessage.toFixed(1)} µs/msg\n`)
      return run
    } finally {
      load.close()
    }
  } finally {
    await server.stop()
  }
}

async function main(): Promise<void> {
  const rooms = await Promise.all(Array.from({ length: ROOMS }, () => createBenchRoom()))
  const tapes = new FrameTapes()
  // One run not recorded, so that this process (the load) is warm before the first pair, and the frames are signed.
  await closedLoop(true, rooms, tapes)
  const pairs: { on: Run; off: Run }[] = []
  for (let i = 0; i < PAIRS; i++) {
    const order = i % 2 === 0 ? [true, false] : [false, true]
    const runs: Run[] = []
    for (const metrics of order) runs.push(await closedLoop(metrics, rooms, tapes))
    pairs.push({ on: runs.find((r) => r.metrics)!, off: runs.find((r) => !r.metrics)! })
  }
  const throughputCost = pairs.map((p) => 1 - p.on.perSecond / p.off.perSecond)
  const cpuCost = pairs.map((p) => p.on.cpuUsPerMessage / p.off.cpuUsPerMessage - 1)
  // Over A-B-B-A (pairs 2k and 2k+1): the sums of both sides' figures.
  const quads = Array.from({ length: PAIRS / 2 }, (_, k) => [pairs[2 * k]!, pairs[2 * k + 1]!] as const)
  const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0)
  const quadThroughputCost = quads.map((q) => 1 - sum(q.map((p) => p.on.perSecond)) / sum(q.map((p) => p.off.perSecond)))
  const quadCpuCost = quads.map((q) => sum(q.map((p) => p.on.cpuUsPerMessage)) / sum(q.map((p) => p.off.cpuUsPerMessage)) - 1)
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`
  table(
    `kai-relay closed loop, signatures checked, ${ROOMS} rooms x 2 clients, ${SECONDS} s per run, ${PAIRS} pairs`,
    ['pair', 'metrics on msg/s', 'off msg/s', 'throughput cost', 'on µs/msg', 'off µs/msg', 'CPU cost'],
    pairs.map((p, i) => [String(i + 1), fmt(p.on.perSecond, ''), fmt(p.off.perSecond, ''), pct(throughputCost[i]!), fmt(p.on.cpuUsPerMessage, ''), fmt(p.off.cpuUsPerMessage, ''), pct(cpuCost[i]!)]),
  )
  const spread = (xs: number[]) => `quartiles ${pct(percentile(xs, 25))} to ${pct(percentile(xs, 75))}`
  console.log(`\nper pair: throughput cost median ${pct(median(throughputCost))} (${spread(throughputCost)}); CPU per message median ${pct(median(cpuCost))} (${spread(cpuCost)})`)
  console.log(`per A-B-B-A (${quads.length}): throughput cost ${quadThroughputCost.map(pct).join(', ')}, median ${pct(median(quadThroughputCost))}; CPU per message ${quadCpuCost.map(pct).join(', ')}, median ${pct(median(quadCpuCost))}`)
  goal('prom-client metrics cost at most 2% of closed-loop throughput (issue 18)', median(quadThroughputCost) <= BUDGET, `median over ${quads.length} A-B-B-A runs ${pct(median(quadThroughputCost))}`)
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`)
  process.exit(1)
})
