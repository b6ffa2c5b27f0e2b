// Not a benchmark (run-all skips files starting with _): profiles the
// engine's intake the way bench/engine-throughput.ts drives it, for finding
// where the time goes. Only the timed runs are profiled, not the setup.
//
//   taskset -c 0 node_modules/.bin/tsx bench/_profile-engine.ts
//
// BENCH_CHUNK=500 profiles catch-up instead of live (1); BENCH_NO_VERIFY=1
// swaps the verifier for one that accepts everything, to see what the
// engine costs beside the signature checks (profiling only). Writes
// BENCH_PROFILE (default engine.cpuprofile) and prints the self and
// inclusive time of the heaviest functions.
import { Session } from 'node:inspector/promises'
import { writeFileSync } from 'node:fs'
import * as Y from 'yjs'
import { SessionKeyring, WebCryptoDeviceKey, type SignatureVerifier } from '@kai-sync/crypto'
import { SyncEngine, WireDoc } from '@kai-sync/engine'
import { sealedMessages } from './_engine-workload'

const N = Number(process.env.BENCH_ENVELOPES ?? 4000)
const CHUNK = Number(process.env.BENCH_CHUNK ?? 1)
const acceptAll: SignatureVerifier = { name: 'noble', verify: async () => true }
const verifier = process.env.BENCH_NO_VERIFY ? { verifier: acceptAll } : {}

const { writer, setup, updates } = await sealedMessages(N)
const reader = await WebCryptoDeviceKey.generate()

// The same steps as engineRun in engine-throughput.ts.
async function run(): Promise<number> {
  const wire = new WireDoc()
  Y.applyUpdate(wire.doc, setup, 'transport')
  const engine = await SyncEngine.open({ sessionId: writer.sessionId, wire, device: reader, keys: new SessionKeyring([writer.keys.current]), mode: 'tab', compactAfter: null, ...verifier })
  const batches: Uint8Array[] = []
  for (let i = 0; i < updates.length; i += CHUNK) batches.push(CHUNK === 1 ? updates[i]! : Y.mergeUpdates(updates.slice(i, i + CHUNK)))
  const t = performance.now()
  for (let i = 0; i < batches.length; i++) {
    Y.applyUpdate(wire.doc, batches[i]!, 'transport')
    if (CHUNK === 1 && i % 16 === 15) await new Promise((r) => setImmediate(r))
  }
  await engine.whenIdle()
  const seconds = (performance.now() - t) / 1000
  if (engine.session.messageCount !== N) throw new Error(`applied ${engine.session.messageCount} of ${N}`)
  engine.destroy()
  return N / seconds
}

await run() // warm-up, not profiled
const session = new Session()
session.connect()
await session.post('Profiler.enable')
await session.post('Profiler.setSamplingInterval', { interval: 100 })
await session.post('Profiler.start')
const rates: number[] = []
for (let i = 0; i < 3; i++) rates.push(await run())
const { profile } = await session.post('Profiler.stop')
writer.destroy()
writeFileSync(process.env.BENCH_PROFILE ?? 'engine.cpuprofile', JSON.stringify(profile))
console.log(`envelopes applied per second: ${rates.map(Math.round).join(', ')}`)

// Self time by function, and inclusive time (each sample counted once per
// function on its stack), as a share of all samples.
type Node = { id: number; callFrame: { functionName: string; url: string }; children?: number[] }
const nodes = new Map<number, Node>((profile.nodes as Node[]).map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const n of nodes.values()) for (const c of n.children ?? []) parent.set(c, n.id)
const sampleTime = new Map<number, number>()
profile.samples!.forEach((id, i) => sampleTime.set(id, (sampleTime.get(id) ?? 0) + (profile.timeDeltas![i] ?? 0)))
const label = (n: Node) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').pop() ?? ''}`.trim()
const self = new Map<string, number>()
const inclusive = new Map<string, number>()
let total = 0
for (const [id, t] of sampleTime) {
  total += t
  self.set(label(nodes.get(id)!), (self.get(label(nodes.get(id)!)) ?? 0) + t)
  const seen = new Set<string>()
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) seen.add(label(nodes.get(at)!))
  for (const l of seen) inclusive.set(l, (inclusive.get(l) ?? 0) + t)
}
const top = (m: Map<string, number>, k: number) =>
  [...m].sort((a, b) => b[1] - a[1]).slice(0, k).map(([l, t]) => `${((100 * t) / total).toFixed(1).padStart(5)}%  ${l}`).join('\n')
console.log(`\nself time, top 30\n${top(self, 30)}\n\ninclusive time, top 50\n${top(inclusive, 50)}`)
