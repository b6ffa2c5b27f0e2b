import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import { describe, expect, it } from 'vitest'
import { SessionDoc } from '@kai-sync/model'
import { toRecord } from '@kai-sync/model/record'
import { ZERO_HASH, deriveClientId, newStreamId, sealEnvelope } from '@kai-sync/crypto'
import { deviceIdOf } from './sync-engine'
import { transportOrigin } from './origins'
import { SimNetwork, addReplica, createSimSession, recordOf, seededRandom, settle, type Replica, type SimSession } from './testing'

// Authorship under a hostile member on a hostile network: honest writers
// edit every part of the session while one writer, between honest edits of
// its own, seals forgeries (messages, audit entries and config writes in
// another device's name, audit entries overwritten or deleted, messages
// deleted), each on a fresh stream and made against its current doc, so
// they refer to items other replicas may not have yet. Loss, duplication,
// reordering and compaction as in the convergence fuzz. At the end every
// replica shows the same record, none of it forged, holds nothing, and
// refused exactly the forgeries, each with forged_author or audit_rewrite.
//
// KAI_FUZZ_RUNS sets the number of schedules (default 20); KAI_FUZZ_SEED
// replays one.

const RUNS = Number(process.env.KAI_FUZZ_RUNS ?? 20)
const ONLY = process.env.KAI_FUZZ_SEED === undefined ? undefined : Number(process.env.KAI_FUZZ_SEED)
const seeds = ONLY === undefined ? Array.from({ length: RUNS }, (_, i) => i + 1) : [ONLY]

const REFUSALS = new Set(['forged_author', 'audit_rewrite'])

function honestEdit(gen: prng.PRNG, r: Replica, step: number, audits: Set<string>): void {
  const s = r.engine.session
  const id = `${r.name}-${step}`
  const ids = s.messageIds()
  switch (prng.int32(gen, 0, 6)) {
    case 0:
      s.appendMessage({ id, role: 'user', content: prng.word(gen, 1, 12), timestamp: prng.int32(gen, 0, 50) })
      r.appended.add(id)
      break
    case 1:
      s.startStream({ id, role: 'assistant', timestamp: prng.int32(gen, 0, 50) })
      r.appended.add(id)
      break
    case 2: {
      const target = ids.length ? prng.oneOf(gen, [...ids]) : undefined
      if (target) s.streamText(target, prng.word(gen, 1, 6))
      if (target && prng.bool(gen)) s.finishStream(target)
      break
    }
    case 3:
      s.setConfig('model', prng.oneOf(gen, ['model-a', 'model-b']))
      break
    case 4:
      s.appendAudit({ id: `audit-${id}`, action: 'tool.run', timestamp: prng.int32(gen, 0, 50) })
      audits.add(`audit-${id}`)
      break
    case 5:
      s.addMemory({ id: `memory-${id}`, data: { note: prng.word(gen, 1, 8) } })
      break
    default: {
      const target = ids.length ? prng.oneOf(gen, [...ids]) : undefined
      if (target && s.message(target)?.status === 'complete') s.policies.editMessage(target, prng.word(gen, 1, 8))
    }
  }
}

/** Seals one forgery made against the hostile replica's doc, on a fresh stream; false if there was nothing to forge. */
async function forge(gen: prng.PRNG, session: SimSession, hostile: Replica, step: number): Promise<boolean> {
  const stream = newStreamId()
  const client = deriveClientId(hostile.device.publicKey, stream)
  const copy = new Y.Doc()
  copy.clientID = client
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(hostile.engine.session.doc))
  const before = Y.encodeStateVector(copy)
  const victim = deviceIdOf(prng.oneOf(gen, session.replicas.filter((r) => r !== hostile)).device)
  const audit = copy.getMap<Record<string, unknown>>('audit')
  const history = copy.getMap('history')
  const as = new SessionDoc({ device: victim, mode: 'tab', doc: copy })
  try {
    switch (prng.int32(gen, 0, 5)) {
      case 0:
        as.appendMessage({ id: `forged-${step}`, role: 'user', content: 'forged' })
        break
      case 1:
        as.appendAudit({ id: `forged-audit-${step}`, action: 'forged' })
        break
      case 2:
        as.setConfig('model', 'forged')
        break
      case 3: {
        const keys = [...audit.keys()]
        if (keys.length === 0) return false
        const key = prng.oneOf(gen, keys)
        audit.set(key, { ...audit.get(key), actor: deviceIdOf(hostile.device), action: 'forged' })
        break
      }
      case 4: {
        const keys = [...audit.keys()]
        if (keys.length === 0) return false
        audit.delete(prng.oneOf(gen, keys))
        break
      }
      default: {
        const keys = [...history.keys()]
        if (keys.length === 0) return false
        history.delete(prng.oneOf(gen, keys))
      }
    }
  } finally {
    as.destroy()
  }
  const plaintext = Y.encodeStateAsUpdate(copy, before)
  const header = { kind: 'update' as const, sessionId: session.sessionId, stream, seq: 1, prev: ZERO_HASH, createdAt: Date.now(), clientIds: [client], covers: [] }
  const env = await sealEnvelope({ header, plaintext, key: session.key, signer: hostile.device })
  const wire = hostile.engine.wire
  wire.doc.transact(() => wire.log.push([env.bytes]), transportOrigin('hostile'))
  return true
}

const totals = { forgeries: 0, refused: 0, waited: 0, messages: 0 }

async function runSchedule(seed: number): Promise<void> {
  const { gen, replay } = seededRandom(seed)
  const context = `seed ${seed} (${replay})`
  const net = new SimNetwork(gen, { reorder: prng.real53(gen) * 0.5, drop: prng.real53(gen) * 0.15, duplicate: prng.real53(gen) * 0.15 })
  const auto = prng.bool(gen) ? prng.int32(gen, 3, 12) : null
  const tuning = { batchWindowMs: 60_000, compactAfter: auto, compactJitterMs: 0 }
  const session = await createSimSession(net, tuning)
  while (session.replicas.length < 4) await addReplica(net, session, tuning)
  const replicas = session.replicas
  const hostile = replicas[3]!
  const audits = new Set<string>()
  let forgeries = 0
  try {
    await settle(net, replicas)
    const steps = prng.int32(gen, 30, 100)
    for (let step = 0; step < steps; step++) {
      const r = prng.oneOf(gen, replicas)
      const action = prng.real53(gen)
      if (action < 0.35) honestEdit(gen, r, step, audits)
      else if (action < 0.5) forgeries += Number(await forge(gen, session, hostile, step))
      else if (action < 0.75) for (let i = prng.int32(gen, 1, 8); i > 0 && net.step(); i--);
      else if (action < 0.88) await r.engine.flush()
      else if (action < 0.92) await r.engine.compact()
      else if (action < 0.95) net.cutRandomLink()
      else await r.engine.whenIdle()
    }
    await settle(net, replicas)
    const expected = JSON.stringify(recordOf(replicas[0]!))
    for (const r of replicas) {
      expect(JSON.stringify(recordOf(r)), `${context}: ${r.name} differs`).toBe(expected)
      expect(r.engine.status.held, `${context}: ${r.name} holds envelopes`).toBe(0)
      const refused = r.rejections.filter((x) => !x.held)
      expect(refused.filter((x) => !REFUSALS.has(x.code)), `${context}: ${r.name}`).toEqual([])
      expect(refused.length, `${context}: ${r.name} refused ${refused.length} of ${forgeries} forgeries`).toBe(forgeries)
      totals.waited += r.rejections.filter((x) => x.held && x.code === 'gap').length
      totals.refused += refused.length
    }
    const record = toRecord(replicas[0]!.engine.session)
    expect(JSON.stringify(record).includes('forged'), `${context}: a forgery shows`).toBe(false)
    for (const id of audits) expect(record.audit.some((a) => a.id === id), `${context}: audit ${id} lost`).toBe(true)
    for (const r of replicas) for (const id of r.appended) expect(record.messages.some((m) => m.id === id), `${context}: message ${id} lost`).toBe(true)
    totals.forgeries += forgeries
    totals.messages += record.messages.length
  } finally {
    for (const r of replicas) r.engine.destroy()
  }
}

describe('authorship fuzz', () => {
  it(`${seeds.length} seeded schedules with a forging writer: every forgery refused everywhere, the rest converges`, async () => {
    for (const seed of seeds) await runSchedule(seed)
    console.log(`authorship fuzz: ${seeds.length} schedules`, totals)
    expect(totals.forgeries).toBeGreaterThan(seeds.length * 2)
    expect(totals.messages).toBeGreaterThan(seeds.length * 3)
  }, 30 * 60_000)
})
