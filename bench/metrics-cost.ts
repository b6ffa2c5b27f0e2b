import { FrameTapes, createBenchRoom, type BenchRoom } from './relay/frames'
import { Load } from './relay/load'
import { processUsage, startKaiRelay, type BenchServer } from './relay/servers'
import { fmt, goal, median, percentile, table } from './lib'

// What kai-relay's prom-client metrics cost (issue 18's budget: at most 2%
// of throughput). One closed loop of `pnpm bench relay` differs by more than
// that from one run to the next on a shared 2-core machine, so a single
// with/without pair cannot tell 2% from noise. Two designs:
//
// - side by side (the default): in each round a relay with metrics and one
//   with `--metrics off` run at the same time, each offered the same fixed
//   load (an open loop of RATE msg/s, well below what one relay can take),
//   so whatever else the machine does in those seconds falls on both alike.
//   What is compared is each relay's own CPU time per message (from /proc):
//   at a fixed rate the two do the same work, batched alike, and the
//   difference is what the metrics add. (A closed loop side by side does not
//   work: the two compete for the cores, the one that gets ahead batches
//   more and spends less per message, and a round with both relays alike,
//   BENCH_CONTROL=on, differed by up to 12%.) Each round's ratio is one
//   sample. Below saturation a message costs more CPU than in the closed
//   loop (fixed costs, smaller batches), so the median of the extra
//   microseconds is held against the CPU per message of a closed loop
//   without metrics in the same run: where CPU bounds the relay, throughput
//   falls by that share.
// - alternating (BENCH_DESIGN=alternating): PAIRS pairs of the same closed
//   loop, one relay at a time, in A-B B-A order, and the median over each
//   two pairs (A-B-B-A: a drift of the machine that is steady over the four
//   runs cancels out; within one pair it falls on the second run).
//
// Each run sends the same pre-signed frames to a fresh relay (FrameTapes),
// so a run costs its measured seconds and the relay's start, not the signing.
//
//   pnpm bench metrics-cost   (or: tsx bench/metrics-cost.ts)
//   BENCH_ROUNDS=14 BENCH_SECONDS=8 BENCH_ROOMS=100 BENCH_RATE=3000 BENCH_CONTROL=on|off
//   BENCH_DESIGN=alternating BENCH_PAIRS=12

const DESIGN = process.env.BENCH_DESIGN === 'alternating' ? 'alternating' : 'side by side'
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 14)
const RATE = Number(process.env.BENCH_RATE ?? 3000)
// BENCH_CONTROL=on (or off): both relays of a round alike, to see what the
// side-by-side design reports when there is no difference (the "on" column
// is then the relay started first in odd rounds, second in even ones).
// BENCH_BASE=<another checkout, installed>: the "off" relay is that
// checkout's, with its metrics on like this one's: what everything between
// the two commits costs, weighed the same way (side by side only).
const BASE = process.env.BENCH_BASE
const CONTROL = process.env.BENCH_CONTROL === 'on' ? [true, true] : process.env.BENCH_CONTROL === 'off' ? [false, false] : null
const PAIRS = 2 * Math.ceil(Number(process.env.BENCH_PAIRS ?? 12) / 2)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8)
const ROOMS = Number(process.env.BENCH_ROOMS ?? 100)
const BUDGET = 0.02

interface Run {
  metrics: boolean
  perSecond: number
  cpuUsPerMessage: number
  /** The relay's main thread alone: where the metrics run (signatures are checked on worker threads). */
  mainUsPerMessage: number
}

/** A relay started and warmed up, its frames for the measured loop encoded. */
interface Ready {
  metrics: boolean
  server: BenchServer
  load: Load
}

/** `openRate`: frames for an open loop at that rate; without, for a closed loop. */
async function ready(metrics: boolean, rooms: BenchRoom[], tapes: FrameTapes, openRate?: number): Promise<Ready> {
  const server = await startKaiRelay(BASE === undefined ? { verify: true, metrics } : { verify: true, ...(metrics ? {} : { checkout: BASE }) })
  try {
    const load = await Load.connect(server, rooms, tapes)
    // Warm-up, not recorded: JIT, first storage writes, socket buffers.
    await load.prepare(load.framesFor(250, 2))
    await load.openLoop(250, 2)
    await load.prepare(load.framesFor(openRate ?? 25_000, SECONDS))
    return { metrics, server, load }
  } catch (e) {
    await server.stop()
    throw e
  }
}

/** One closed loop, or with `rate`, an open loop at that many messages per second in all. */
async function measure({ metrics, server, load }: Ready, rate?: number): Promise<Run> {
  try {
    const before = processUsage(server.pid)
    const r = rate === undefined ? await load.closedLoop(8, SECONDS) : await load.openLoop(rate, SECONDS)
    const after = processUsage(server.pid)
    const cpu = after.cpuSeconds - before.cpuSeconds
    const main = after.mainThreadCpuSeconds - before.mainThreadCpuSeconds
    if (r.lost > 0 || r.errors > 0) throw new Error(`${rate === undefined ? 'closed' : 'open'} loop lost ${r.lost} and had ${r.errors} errors (metrics ${metrics ? 'on' : 'off'})`)
    const perMessage = (seconds: number) => (seconds * 1e6) / Math.max(1, r.delivered)
    const run = { metrics, perSecond: r.deliveredPerSecond, cpuUsPerMessage: perMessage(cpu), mainUsPerMessage: perMessage(main) }
    process.stderr.write(`${BASE === undefined ? `metrics ${metrics ? 'on ' : 'off'}` : metrics ? 'this checkout' : BASE}  ${run.perSecond} msg/s  ${run.cpuUsPerMessage.toFixed(1)} µs/msg (main thread ${run.mainUsPerMessage.toFixed(1)})\n`)
    return run
  } finally {
    load.close()
    await server.stop()
  }
}

async function closedLoop(metrics: boolean, rooms: BenchRoom[], tapes: FrameTapes): Promise<Run> {
  return measure(await ready(metrics, rooms, tapes))
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`
const spread = (xs: number[]) => `quartiles ${pct(percentile(xs, 25))} to ${pct(percentile(xs, 75))}`

async function sideBySide(rooms: BenchRoom[], tapes: FrameTapes, reference: Run): Promise<void> {
  const rounds: { on: Run; off: Run }[] = []
  for (let i = 0; i < ROUNDS; i++) {
    // Which one starts and warms up first alternates; both then run at once.
    const order = CONTROL ?? (i % 2 === 0 ? [true, false] : [false, true])
    const both: Ready[] = []
    try {
      for (const metrics of order) both.push(await ready(metrics, rooms, tapes, RATE))
    } catch (e) {
      for (const r of both) await r.server.stop()
      throw e
    }
    const runs = await Promise.all(both.map((r) => measure(r, RATE)))
    rounds.push(CONTROL ? { on: runs[i % 2]!, off: runs[1 - (i % 2)]! } : { on: runs.find((r) => r.metrics)!, off: runs.find((r) => !r.metrics)! })
  }
  const cpuCost = rounds.map((p) => p.on.cpuUsPerMessage / p.off.cpuUsPerMessage - 1)
  const extraUs = rounds.map((p) => p.on.cpuUsPerMessage - p.off.cpuUsPerMessage)
  // The metrics run on the main thread (the worker threads check
  // signatures and add their own noise to the process's figure), but part
  // of the garbage they make is collected on V8's helper threads: the
  // budget is held against the whole process, the main thread shown beside.
  const extraMainUs = rounds.map((p) => p.on.mainUsPerMessage - p.off.mainUsPerMessage)
  // At a rate below saturation a message costs more CPU than in the closed
  // loop (fixed costs, smaller batches), so the same extra microseconds are a
  // smaller share of it: the budget is held against the closed loop's.
  const ofClosedLoop = median(extraUs) / reference.cpuUsPerMessage
  table(
    `kai-relay, signatures checked, side by side: ${BASE === undefined ? 'a relay with metrics' : "this checkout's relay"}${CONTROL ? ' (control: both alike)' : ''} and ${BASE === undefined ? 'one without' : `${BASE}'s`} at the same time, each ${fmt(RATE, '')} msg/s offered, ${ROOMS} rooms x 2 clients each, ${SECONDS} s per round, ${ROUNDS} rounds; CPU µs per message, the whole process and its main thread`,
    ['round', 'on', 'off', 'on, main', 'off, main', 'main thread: metrics add'],
    rounds.map((p, i) => [String(i + 1), fmt(p.on.cpuUsPerMessage, ''), fmt(p.off.cpuUsPerMessage, ''), fmt(p.on.mainUsPerMessage, ''), fmt(p.off.mainUsPerMessage, ''), `${extraMainUs[i]!.toFixed(1)} µs`]),
  )
  const us = (x: number) => `${x.toFixed(1)} µs`
  const quartiles = (xs: number[]) => `quartiles ${us(percentile(xs, 25))} to ${us(percentile(xs, 75))}`
  console.log(`\nAt ${fmt(RATE, '')} msg/s the metrics add, per message: on the main thread median ${us(median(extraMainUs))} (${quartiles(extraMainUs)}); to the whole process median ${us(median(extraUs))} (${quartiles(extraUs)}, ${pct(median(cpuCost))})`)
  console.log(`closed loop without metrics, alone, in the same run: ${fmt(reference.perSecond, '')} msg/s at ${us(reference.cpuUsPerMessage)} per message (main thread ${us(reference.mainUsPerMessage)}); the metrics' median ${us(median(extraUs))} is ${pct(ofClosedLoop)} of that (on the main thread ${pct(median(extraMainUs) / reference.cpuUsPerMessage)})`)
  if (BASE !== undefined) return console.log(`\nthis checkout's relay against ${BASE}'s: ${us(median(extraUs))} more CPU per message, ${pct(ofClosedLoop)} of the base's closed loop`)
  goal('prom-client metrics cost at most 2% of the relay\'s CPU per message in the closed loop, so of its throughput there (issue 18)', ofClosedLoop <= BUDGET, `median over ${ROUNDS} side-by-side rounds ${us(median(extraUs))} per message, ${pct(ofClosedLoop)} of ${us(reference.cpuUsPerMessage)}`)
}

async function alternating(rooms: BenchRoom[], tapes: FrameTapes): Promise<void> {
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
  table(
    `kai-relay closed loop, signatures checked, ${ROOMS} rooms x 2 clients, ${SECONDS} s per run, ${PAIRS} pairs`,
    ['pair', 'metrics on msg/s', 'off msg/s', 'throughput cost', 'on µs/msg', 'off µs/msg', 'CPU cost'],
    pairs.map((p, i) => [String(i + 1), fmt(p.on.perSecond, ''), fmt(p.off.perSecond, ''), pct(throughputCost[i]!), fmt(p.on.cpuUsPerMessage, ''), fmt(p.off.cpuUsPerMessage, ''), pct(cpuCost[i]!)]),
  )
  console.log(`\nper pair: throughput cost median ${pct(median(throughputCost))} (${spread(throughputCost)}); CPU per message median ${pct(median(cpuCost))} (${spread(cpuCost)})`)
  console.log(`per A-B-B-A (${quads.length}): throughput cost ${quadThroughputCost.map(pct).join(', ')}, median ${pct(median(quadThroughputCost))}; CPU per message ${quadCpuCost.map(pct).join(', ')}, median ${pct(median(quadCpuCost))}`)
  goal('prom-client metrics cost at most 2% of closed-loop throughput (issue 18)', median(quadThroughputCost) <= BUDGET, `median over ${quads.length} A-B-B-A runs ${pct(median(quadThroughputCost))}`)
}

async function main(): Promise<void> {
  const rooms = await Promise.all(Array.from({ length: ROOMS }, () => createBenchRoom()))
  const tapes = new FrameTapes()
  // One run not recorded, so that this process (the load) is warm before the first measured one, and the frames are signed.
  await closedLoop(true, rooms, tapes)
  if (DESIGN === 'alternating') await alternating(rooms, tapes)
  else await sideBySide(rooms, tapes, await closedLoop(false, rooms, tapes))
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`)
  process.exit(1)
})
