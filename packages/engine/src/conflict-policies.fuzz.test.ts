import * as prng from 'lib0/prng'
import { describe, expect, it } from 'vitest'
import {
  LOCAL_ORIGIN,
  canonicalJson,
  compareHlc,
  mergeConcurrent,
  type ConflictPolicy,
  type Json,
  type PolicyTarget,
  type SessionDoc,
  type UserChoice,
} from '@kai-sync/model'
import { toRecord } from '@kai-sync/model/record'
import { SimNetwork, addReplica, assertConverged, createSimSession, recordOf, reopenReplica, seededRandom, settle, type Replica } from './testing'

// Conflict policies under a hostile network: 2 to 4 replicas (some of them
// contexts of one device), random policies (changed concurrently too),
// concurrent config writes and message edits, resolutions, user_choice
// callbacks, loss, reordering, partitions, offline replicas, compaction.
// After the network settles every replica must show the same values and
// the same open conflicts, and those must be what an independent oracle
// expects: it logs every register write with the writer's Yjs state vector
// at that moment, so it knows which writes were truly concurrent.
//
// KAI_FUZZ_RUNS sets the number of schedules (default 200; `pnpm test:fuzz`
// does 1,000). KAI_FUZZ_SEED replays one schedule.

const RUNS = Number(process.env.KAI_FUZZ_RUNS ?? 200)
const ONLY = process.env.KAI_FUZZ_SEED === undefined ? undefined : Number(process.env.KAI_FUZZ_SEED)
const seeds = ONLY === undefined ? Array.from({ length: RUNS }, (_, i) => i + 1) : [ONLY]
// The sequential property is cheaper to state and needs fewer schedules.
const sequentialSeeds = ONLY === undefined ? seeds.slice(0, Math.max(1, Math.ceil(seeds.length / 4))) : [ONLY]

const POLICIES: ConflictPolicy[] = ['merge', 'timestamp', 'manual', 'user_choice']
const TARGETS: PolicyTarget[] = ['default', 'config.model', 'config.temperature', 'config.tools', 'message.content']
const TOOLS = ['search', 'code', 'browse', 'shell']

/** A register write as the oracle sees it. */
interface LoggedWrite {
  field: string
  value: Json
  hlc: string
  /** Its register key: orders writes with equal clocks, as the registers do. */
  key: string
  replaced?: Json[]
  /** The Yjs client that wrote it, and that client's clock before the write. */
  client: number
  clock: number
  /** The writer's state vector before the write: every write it had seen. */
  seen: Map<number, number>
}

/** Every config write and message edit any replica made, from its local transactions. */
class WriteLog {
  readonly writes: LoggedWrite[] = []

  attach(session: SessionDoc): void {
    const config = session.configRegister.map
    const edits = session.policies.edits.map
    session.doc.on('afterTransaction', (tr) => {
      if (tr.origin !== LOCAL_ORIGIN) return
      const client = tr.doc.clientID
      // A write's register item is the first struct its transaction makes
      // (deletions make none), so "seen" is: the writer's clock was past it.
      const base = { client, clock: tr.beforeState.get(client) ?? 0, seen: tr.beforeState }
      for (const key of tr.changed.get(config as never) ?? []) {
        const w = key === null ? undefined : config.get(key)
        if (w && key !== null) this.writes.push({ ...base, field: `config.${w.field}`, value: w.value, hlc: w.hlc, key, ...(w.replaced ? { replaced: w.replaced } : {}) })
      }
      for (const key of tr.changed.get(edits as never) ?? []) {
        const e = key === null ? undefined : edits.get(key)
        if (e && key !== null) this.writes.push({ ...base, field: `message.${e.message}.content`, value: e.value, hlc: e.hlc, key })
      }
    })
  }

  fields(): Set<string> {
    return new Set(this.writes.map((w) => w.field))
  }

  /** The writes of a field no other write of it had seen: what the register must hold. */
  heads(field: string): LoggedWrite[] {
    const mine = this.writes.filter((w) => w.field === field)
    const seenBy = (a: LoggedWrite, b: LoggedWrite) => (b.seen.get(a.client) ?? 0) > a.clock
    return mine.filter((a) => !mine.some((b) => b !== a && seenBy(a, b))).sort((a, b) => compareHlc(a.hlc, b.hlc) || compareHlc(a.key, b.key))
  }
}

function hash(s: string): number {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619)
  return h >>> 0
}

function freshValue(field: string, tag: string): Json {
  if (field === 'config.model') return `model-${tag}`
  if (field === 'config.temperature') return (hash(tag) % 21) / 10
  if (field === 'config.tools') return TOOLS.filter((_, i) => (hash(tag) >> i) & 1)
  return `chosen ${tag}`
}

/** A user_choice dialog whose answer depends only on the conflict and the replica, answering at most 3 times. */
function dialog(r: Replica, stats: Totals): UserChoice {
  let budget = 3
  return async (c) => {
    if (budget-- <= 0) return undefined
    stats.answers++
    const pick = hash(`${r.name}|${c.field}|${c.values.map((v) => v.hlc).join()}`) % (c.values.length + 2)
    if (pick < c.values.length) return c.values[pick]!.value
    return pick === c.values.length ? freshValue(c.field, `${r.name}-${budget}`) : undefined
  }
}

/** Settles the network and every pending user_choice answer (which writes, so the network has more to do). */
async function settleAll(net: SimNetwork, replicas: Replica[]): Promise<void> {
  for (let round = 0; round < 20; round++) {
    await settle(net, replicas)
    await Promise.all(replicas.map((r) => r.engine.session.policies.idle()))
    if (replicas.every((r) => r.engine.status.unsealed === 0) && net.pending === 0) return
  }
  throw new Error('user_choice answers kept coming')
}

async function write(gen: prng.PRNG, r: Replica, step: number, totals: Totals): Promise<void> {
  const s = r.engine.session
  const kind = prng.int32(gen, 0, 9)
  if (kind <= 1) s.setConfig('model', prng.oneOf(gen, ['model-a', 'model-b', 'model-c']))
  else if (kind <= 3) s.setConfig('temperature', prng.int32(gen, 0, 4) / 2)
  else if (kind <= 4) {
    // Add or remove one tool from what this replica shows: exercises the list merge.
    const tools = new Set(s.policies.config().tools ?? [])
    const tool = prng.oneOf(gen, TOOLS)
    if (tools.has(tool)) tools.delete(tool)
    else tools.add(tool)
    s.setConfig('tools', [...tools])
  } else if (kind <= 6) {
    const id = prng.oneOf(gen, [...s.messageIds()])
    s.policies.editMessage(id, `${s.message(id)!.content.slice(0, prng.int32(gen, 0, 12))}${prng.word(gen, 1, 6)}`)
  } else if (kind <= 7) {
    const id = `${r.name}-${step}`
    s.appendMessage({ id, role: 'user', content: prng.word(gen, 3, 12), timestamp: prng.int32(gen, 0, 50) })
    r.appended.add(id)
  } else {
    const open = s.policies.conflicts()
    if (open.length === 0) return
    const c = prng.oneOf(gen, open)
    s.policies.resolveConflict(c.field, prng.bool(gen) ? prng.oneOf(gen, c.values).value : freshValue(c.field, `${r.name}-${step}`))
    totals.resolutions++
  }
}

interface Totals {
  schedules: number
  writes: number
  concurrent: number
  conflictsSeen: number
  resolutions: number
  answers: number
}

/**
 * Every replica shows what replica 0 shows, and replica 0 shows what the
 * oracle expects: the conflicts open are exactly the fields under manual or
 * user_choice whose concurrent writes disagree, and each field shows the
 * head its policy picks.
 */
function check(replicas: Replica[], log: WriteLog, totals: Totals, context: string): void {
  assertConverged(replicas, context)
  const first = replicas[0]!.engine.session.policies
  const record = recordOf(replicas[0]!)
  for (const r of replicas) {
    expect(r.engine.session.policies.conflicts(), `${context}: ${r.name} conflicts`).toEqual(record.conflicts)
    expect(r.engine.session.policies.settings(), `${context}: ${r.name} settings`).toEqual(first.settings())
  }
  const expected: [string, string[]][] = []
  for (const field of [...log.fields()].sort()) {
    const heads = log.heads(field)
    const policy = first.policyOf(field)
    const distinct = [...new Set(heads.map((h) => canonicalJson(h.value)))].sort()
    if (heads.length > 1) totals.concurrent++
    if ((policy === 'manual' || policy === 'user_choice') && distinct.length > 1) expected.push([field, distinct])
    const latest = heads[heads.length - 1]!
    if (field.startsWith('config.')) {
      const shown = record.config[field.slice('config.'.length)]
      const want = policy === 'merge' ? mergeConcurrent(heads) : latest.value
      expect(shown, `${context}: ${field} under ${policy}`).toEqual(want)
    } else if (policy !== 'merge') {
      const id = field.slice('message.'.length, -'.content'.length)
      expect(record.messages.find((m) => m.id === id)?.content, `${context}: ${field} under ${policy}`).toBe(latest.value)
    }
  }
  const actual = record.conflicts.map((c): [string, string[]] => [c.field, c.values.map((v) => canonicalJson(v.value)).sort()])
  expect(actual, `${context}: open conflicts`).toEqual(expected)
  totals.conflictsSeen += actual.length
}

async function setup(gen: prng.PRNG, tuning: { batchWindowMs: number; compactAfter: number | null; compactJitterMs: number }, policies: () => ConflictPolicy) {
  const net = new SimNetwork(gen, { reorder: prng.real53(gen) * 0.5, drop: prng.real53(gen) * 0.1, duplicate: prng.real53(gen) * 0.1 })
  const session = await createSimSession(net, tuning)
  const owner = session.owner.engine.session
  owner.policies.setPolicy('default', policies())
  for (const target of TARGETS.slice(1)) if (prng.real53(gen) < 0.3) owner.policies.setPolicy(target, policies())
  owner.appendMessage({ id: 'm0', role: 'user', content: 'hello there', timestamp: 1 })
  owner.appendMessage({ id: 'm1', role: 'assistant', content: 'general kenobi', timestamp: 2 })
  const count = prng.int32(gen, 2, 4)
  while (session.replicas.length < count) {
    const sameDevice = session.replicas.length > 1 && prng.real53(gen) < 0.3
    await addReplica(net, session, { ...tuning, ...(sameDevice ? { sameDeviceAs: prng.oneOf(gen, session.replicas) } : {}) })
  }
  const log = new WriteLog()
  for (const r of session.replicas) log.attach(r.engine.session)
  await settle(net, session.replicas)
  return { net, session, log }
}

async function runSchedule(seed: number, totals: Totals): Promise<void> {
  const { gen, replay } = seededRandom(seed)
  const auto = prng.bool(gen) ? prng.int32(gen, 3, 10) : null
  const tuning = { batchWindowMs: 60_000, compactAfter: auto, compactJitterMs: 0 }
  const { net, session, log } = await setup(gen, tuning, () => prng.oneOf(gen, POLICIES))
  const replicas = session.replicas
  for (const r of replicas) if (prng.bool(gen)) r.engine.session.policies.setUserChoice(dialog(r, totals))
  try {
    const steps = prng.int32(gen, 15, 50)
    for (let step = 0; step < steps; step++) {
      const r = prng.oneOf(gen, replicas)
      const action = prng.real53(gen)
      if (action < 0.45) await write(gen, r, step, totals)
      else if (action < 0.65) for (let i = prng.int32(gen, 1, 6); i > 0 && net.step(); i--);
      else if (action < 0.73) await r.engine.flush()
      else if (action < 0.77) await r.engine.compact()
      else if (action < 0.81) net.cutRandomLink()
      else if (action < 0.85) net.goOffline(r.node)
      else if (action < 0.89) net.goOnline(r.node)
      else if (action < 0.92) net.healAll()
      else if (action < 0.94) r.engine.session.policies.setPolicy(prng.oneOf(gen, TARGETS), prng.oneOf(gen, POLICIES))
      else await r.engine.whenIdle()
    }
    await settleAll(net, replicas)
    check(replicas, log, totals, `seed ${seed} (${replay})`)
    // A reload, from whatever the wire doc holds after compactions, shows the same.
    const reloaded = await reopenReplica(prng.oneOf(gen, replicas))
    try {
      expect(toRecord(reloaded.session), `seed ${seed}: reload (${replay})`).toEqual(recordOf(replicas[0]!))
    } finally {
      reloaded.destroy()
    }

    // Resolve every open conflict from one replica, or from two at once.
    for (const c of replicas[0]!.engine.session.policies.conflicts()) {
      const resolvers = prng.bool(gen) ? [prng.oneOf(gen, replicas)] : [prng.oneOf(gen, replicas), prng.oneOf(gen, replicas)]
      for (const r of resolvers) {
        const value = prng.bool(gen) ? c.values[0]!.value : freshValue(c.field, r.name)
        // A second resolver on the same replica has seen the first: nothing left to resolve.
        if (r.engine.session.policies.conflict(c.field)) r.engine.session.policies.resolveConflict(c.field, value)
        totals.resolutions++
      }
    }
    await settleAll(net, replicas)
    check(replicas, log, totals, `seed ${seed}, after resolutions (${replay})`)

    // Whatever concurrent resolutions left open, one replica settles.
    for (let round = 0; round < 5 && recordOf(replicas[0]!).conflicts.length > 0; round++) {
      const policies = replicas[0]!.engine.session.policies
      for (const c of policies.conflicts()) policies.resolveConflict(c.field, c.values[0]!.value)
      await settleAll(net, replicas)
    }
    check(replicas, log, totals, `seed ${seed}, resolved (${replay})`)
    expect(recordOf(replicas[0]!).conflicts, `seed ${seed}: resolutions converge (${replay})`).toEqual([])
    totals.schedules++
    totals.writes += log.writes.length
  } finally {
    for (const r of replicas) r.engine.destroy()
  }
}

/** Writes in turn, each after the network settled: no replica ever shows a conflict. */
async function runSequential(seed: number, totals: Totals): Promise<void> {
  // Its own stream of choices, replayed by the same KAI_FUZZ_SEED.
  const { gen } = seededRandom(10_000 + seed)
  const replay = `replay with KAI_FUZZ_SEED=${seed}`
  const tuning = { batchWindowMs: 60_000, compactAfter: prng.bool(gen) ? 4 : null, compactJitterMs: 0 }
  const { net, session, log } = await setup(gen, tuning, () => prng.oneOf(gen, ['manual', 'user_choice'] as const))
  const replicas = session.replicas
  try {
    for (let step = 0; step < 10; step++) {
      const r = prng.oneOf(gen, replicas)
      await write(gen, r, step, totals)
      if (prng.bool(gen)) net.goOffline(prng.oneOf(gen, replicas).node)
      await settle(net, replicas)
      for (const x of replicas) {
        expect(x.engine.session.policies.conflicts(), `seed ${seed} step ${step}: ${x.name} (${replay})`).toEqual([])
      }
    }
    check(replicas, log, totals, `seed ${seed}, sequential (${replay})`)
    expect(log.writes.length).toBeGreaterThan(0)
  } finally {
    for (const r of replicas) r.engine.destroy()
  }
}

describe('conflict policies fuzz', () => {
  it(`${seeds.length} seeded schedules: replicas agree on values and conflicts, as concurrency dictates, and resolutions converge`, async () => {
    const totals: Totals = { schedules: 0, writes: 0, concurrent: 0, conflictsSeen: 0, resolutions: 0, answers: 0 }
    for (const seed of seeds) await runSchedule(seed, totals)
    console.log(`policies fuzz: ${seeds.length} schedules`, totals)
    // The schedules did make the situations they are meant to test.
    const n = seeds.length
    expect(totals.schedules).toBe(n)
    if (n >= 20) {
      expect(totals.concurrent).toBeGreaterThan(n / 2)
      expect(totals.conflictsSeen).toBeGreaterThan(n / 4)
      expect(totals.answers).toBeGreaterThan(0)
    }
  }, 30 * 60_000)

  it(`${sequentialSeeds.length} seeded schedules of writes in turn never raise a conflict`, async () => {
    const totals: Totals = { schedules: 0, writes: 0, concurrent: 0, conflictsSeen: 0, resolutions: 0, answers: 0 }
    for (const seed of sequentialSeeds) await runSequential(seed, totals)
    expect(totals.concurrent).toBe(0)
  }, 30 * 60_000)
})
