import * as prng from 'lib0/prng'
import { describe, expect, it } from 'vitest'
import { SimNetwork, addReplica, assertConverged, createSimSession, seededRandom, settle, type Replica } from './testing'

// Convergence under a hostile network: 2 to 5 replicas (some of them
// contexts of one device), random edits to every part of the session,
// loss, duplication, reordering, partitions, replicas going offline and
// rejoining, compaction at random points. At the end every replica must
// show the same record and hold every message anyone appended; then a late
// joiner must reach the same record from the relay alone.
//
// KAI_FUZZ_RUNS sets the number of schedules (the default run does 60;
// `pnpm test:fuzz` does 1,000). KAI_FUZZ_SEED replays one schedule.

const RUNS = Number(process.env.KAI_FUZZ_RUNS ?? 60)
const ONLY = process.env.KAI_FUZZ_SEED === undefined ? undefined : Number(process.env.KAI_FUZZ_SEED)
const seeds = ONLY === undefined ? Array.from({ length: RUNS }, (_, i) => i + 1) : [ONLY]

async function edit(gen: prng.PRNG, r: Replica, step: number): Promise<void> {
  const s = r.engine.session
  if (!r.engine.canWrite) return
  const ids = s.messageIds()
  const id = `${r.name}-${step}`
  switch (prng.int32(gen, 0, 7)) {
    case 0:
    case 1:
      s.appendMessage({ id, role: prng.oneOf(gen, ['user', 'assistant'] as const), content: prng.word(gen, 1, 12), timestamp: prng.int32(gen, 0, 50) })
      r.appended.add(id)
      break
    case 2:
      s.startStream({ id, role: 'assistant', timestamp: prng.int32(gen, 0, 50) })
      r.appended.add(id)
      break
    case 3: {
      // Stream into any message, possibly one another replica is streaming into.
      const target = ids.length ? prng.oneOf(gen, [...ids]) : undefined
      if (target) s.streamText(target, prng.word(gen, 1, 6))
      if (target && prng.bool(gen)) s.finishStream(target)
      break
    }
    case 4:
      setRandomConfig(gen, r)
      break
    case 5:
      s.appendAudit({ id: `audit-${id}`, action: prng.oneOf(gen, ['message.append', 'config.set', 'handoff']), timestamp: prng.int32(gen, 0, 50) })
      break
    case 6:
      s.addMemory({ id: `memory-${id}`, data: { note: prng.word(gen, 1, 8) }, timestamp: prng.int32(gen, 0, 50) })
      break
    default: {
      // Several operations in one transaction.
      s.transact(() => {
        s.appendMessage({ id, role: 'user', content: 'batched', timestamp: prng.int32(gen, 0, 50) })
        s.setConfig('temperature', Math.round(prng.real53(gen) * 20) / 10)
      })
      r.appended.add(id)
    }
  }
}

function setRandomConfig(gen: prng.PRNG, r: Replica): void {
  const s = r.engine.session
  switch (prng.int32(gen, 0, 3)) {
    case 0:
      return void s.setConfig('model', prng.oneOf(gen, ['model-a', 'model-b', 'model-c']))
    case 1:
      return void s.setConfig('temperature', prng.int32(gen, 0, 20) / 10)
    case 2:
      return void s.setConfig('system_prompt', prng.word(gen, 0, 20))
    default:
      return void s.setConfig('custom', { nested: prng.int32(gen, 0, 9) })
  }
}

/** What the schedules exercised, so a run that tests nothing shows up. */
const totals = { replicas: 0, messages: 0, sealed: 0, applied: 0, snapshots: 0, held: 0, delivered: 0 }

async function runSchedule(seed: number): Promise<void> {
  const { gen, replay } = seededRandom(seed)
  const net = new SimNetwork(gen, { reorder: prng.real53(gen) * 0.5, drop: prng.real53(gen) * 0.15, duplicate: prng.real53(gen) * 0.15 })
  // Batching left to explicit flushes; automatic compaction in some schedules.
  const auto = prng.bool(gen) ? prng.int32(gen, 3, 12) : null
  const tuning = { batchWindowMs: 60_000, compactAfter: auto, compactJitterMs: 0 }
  const session = await createSimSession(net, tuning)
  const count = prng.int32(gen, 2, 5)
  while (session.replicas.length < count) {
    const sameDevice = session.replicas.length > 1 && prng.real53(gen) < 0.3
    await addReplica(net, session, { ...tuning, ...(sameDevice ? { sameDeviceAs: prng.oneOf(gen, session.replicas) } : {}) })
  }
  const replicas = session.replicas
  try {
    // Most schedules start with every replica enrolled and in sync; the
    // rest start cold, with roster entries racing the first envelopes.
    if (prng.real53(gen) < 0.7) await settle(net, replicas)
    const steps = prng.int32(gen, 30, 120)
    for (let step = 0; step < steps; step++) {
      const r = prng.oneOf(gen, replicas)
      const action = prng.real53(gen)
      if (action < 0.35) await edit(gen, r, step)
      else if (action < 0.6) for (let i = prng.int32(gen, 1, 8); i > 0 && net.step(); i--);
      else if (action < 0.72) await r.engine.flush()
      else if (action < 0.8) await r.engine.compact()
      else if (action < 0.84) net.cutRandomLink()
      else if (action < 0.88) net.goOffline(r.node)
      else if (action < 0.92) net.goOnline(r.node)
      else if (action < 0.95) net.healAll()
      else await r.engine.whenIdle()
    }
    await settle(net, replicas)
    assertConverged(replicas, `seed ${seed} (${replay})`)

    await addReplica(net, session, tuning)
    await settle(net, replicas)
    assertConverged(replicas, `seed ${seed}, late joiner (${replay})`)
    totals.replicas += replicas.length
    totals.messages += replicas[0]!.engine.session.messageCount
    totals.delivered += net.delivered
    for (const r of replicas) {
      totals.sealed += r.engine.stats.sealed
      totals.applied += r.engine.stats.applied
      totals.snapshots += r.engine.stats.snapshots
      totals.held += r.rejections.filter((x) => x.held).length
    }
  } finally {
    for (const r of replicas) r.engine.destroy()
  }
}

describe('convergence fuzz', () => {
  it(`${seeds.length} seeded schedules converge with nothing lost`, async () => {
    for (const seed of seeds) await runSchedule(seed)
    console.log(`fuzz: ${seeds.length} schedules`, totals)
    // Every kind of event the schedules are meant to cause did happen.
    const n = seeds.length
    expect(totals.messages).toBeGreaterThan(n * 3)
    expect(totals.applied).toBeGreaterThan(n * 5)
    expect(totals.snapshots).toBeGreaterThan(n / 2)
    if (n >= 20) expect(totals.held).toBeGreaterThan(0)
  }, 30 * 60_000)
})
