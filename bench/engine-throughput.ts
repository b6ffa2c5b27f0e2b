// Remote envelopes applied per second by one engine, against the raw
// Ed25519 verify rate of the same verifier on the same envelopes: the
// engine also decrypts, checks chains and client ids, and applies to Yjs.
// Run pinned to one core (bench/run-all.ts uses taskset).
import * as Y from 'yjs'
import { SessionKeyring, WebCryptoDeviceKey, decodeEnvelope, defaultVerifier } from '@kai-sync/crypto'
import { SyncEngine, WireDoc } from '@kai-sync/engine'
import { fmt, goal, median, now, table } from './lib'
import { sealedMessages } from './_engine-workload'

const N = Number(process.env.BENCH_ENVELOPES ?? 4000)
const RUNS = 5

const { writer, setup, updates } = await sealedMessages(N)
const envelopes = writer.wire.envelopes()
const reader = await WebCryptoDeviceKey.generate()
const verifier = await defaultVerifier()

/**
 * Envelopes per second of wall time, and per second of this process's CPU
 * time (every thread: the verify threads too). Pinned to one core, the two
 * differ by what the machine's other tenants took from that core, so the
 * CPU figure is the steadier one on a shared machine.
 */
interface Rate {
  wall: number
  cpu: number
}

function startTimer(): () => Rate {
  const t = now()
  const cpu = process.cpuUsage()
  return () => {
    const used = process.cpuUsage(cpu)
    return { wall: N / ((now() - t) / 1000), cpu: N / ((used.user + used.system) / 1e6) }
  }
}

async function engineRun(chunk: number): Promise<Rate> {
  const wire = new WireDoc()
  Y.applyUpdate(wire.doc, setup, 'transport')
  const engine = await SyncEngine.open({ sessionId: writer.sessionId, wire, device: reader, keys: new SessionKeyring([writer.keys.current]), mode: 'tab', compactAfter: null })
  // Catch-up arrives as merged updates (sync step 2); live, one update per
  // envelope, with the event loop turning between socket reads.
  const batches: Uint8Array[] = []
  for (let i = 0; i < updates.length; i += chunk) batches.push(chunk === 1 ? updates[i]! : Y.mergeUpdates(updates.slice(i, i + chunk)))
  const stop = startTimer()
  for (let i = 0; i < batches.length; i++) {
    Y.applyUpdate(wire.doc, batches[i]!, 'transport')
    if (chunk === 1 && i % 16 === 15) await new Promise((r) => setImmediate(r))
  }
  await engine.whenIdle()
  const rate = stop()
  if (engine.session.messageCount !== N) throw new Error(`applied ${engine.session.messageCount} of ${N}`)
  engine.destroy()
  return rate
}

async function verifyRun(): Promise<Rate> {
  const decoded = envelopes.map(decodeEnvelope)
  // The signature covers every byte before it.
  const messages = decoded.map((e) => e.bytes.subarray(0, e.bytes.length - 64))
  const stop = startTimer()
  const ok = await Promise.all(decoded.map((e, i) => verifier.verify(e.header.device, messages[i]!, e.signature)))
  const rate = stop()
  if (!ok.every(Boolean)) throw new Error('a signature failed')
  return rate
}

const raw: Rate[] = []
const bulk: Rate[] = []
const live: Rate[] = []
for (let r = 0; r < RUNS; r++) {
  raw.push(await verifyRun())
  bulk.push(await engineRun(500))
  live.push(await engineRun(1))
}
const wall = (rates: Rate[]) => median(rates.map((r) => r.wall))
const cpu = (rates: Rate[]) => median(rates.map((r) => r.cpu))
const row = (what: string, rates: Rate[]) => [what, fmt(wall(rates), '/s'), fmt(wall(rates) / wall(raw), 'x'), fmt(cpu(rates), '/s'), fmt(cpu(rates) / cpu(raw), 'x')]
table(`Remote envelopes applied per second, ${N} envelopes of one message each (median of ${RUNS})`, ['what', 'per second', 'vs raw verify', 'per CPU second', 'vs raw verify (CPU)'], [
  row(`raw Ed25519 verify (${verifier.name}), all in flight`, raw),
  row('engine, 500 envelopes per wire update (catch-up)', bulk),
  row('engine, one envelope per wire update (live)', live),
])
// Issue 17 raised issue 2's 0.7x to 0.8x, for catch-up and live alike.
const [catchUp, liveRatio] = [wall(bulk) / wall(raw), wall(live) / wall(raw)]
goal('engine throughput at least 0.8x the raw verify rate, catch-up and live', catchUp >= 0.8 && liveRatio >= 0.8, `catch-up ${fmt(catchUp, 'x')}, live ${fmt(liveRatio, 'x')}`)
writer.destroy()
