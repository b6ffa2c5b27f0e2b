import { afterEach, describe, expect, it } from 'vitest'
import { decodeEnvelope } from '@kai-sync/crypto'
import { type ConflictInfo, type ConflictPolicy, type SessionRecord } from '@kai-sync/model'
import { SessionRecordSchema } from '@kai-sync/model/exchange-schemas'
import { toRecord } from '@kai-sync/model/record'
import type { SyncEngine } from './sync-engine'
import { SimNetwork, addReplica, assertConverged, createSimSession, recordOf, reopenReplica, seededRandom, settle, type Replica } from './testing'

// The named scenario of issue 3, on the simulated network with real
// envelopes: two devices go offline, both edit `model` and `temperature`,
// and reconnect. Device A's clock is later for `temperature`, B's for
// `model`, so "the latest write" differs per key.

const engines: SyncEngine[] = []
afterEach(() => {
  for (const e of engines.splice(0)) e.destroy()
})

const T0 = 1_700_000_000_000

async function twoDevices(policy: ConflictPolicy) {
  const net = new SimNetwork(seededRandom(3).gen, { reorder: 0, drop: 0, duplicate: 0 })
  const clockA = { now: T0 }
  const clockB = { now: T0 }
  const tuning = { batchWindowMs: 5, compactAfter: null }
  const session = await createSimSession(net, { ...tuning, now: () => clockA.now })
  const b = await addReplica(net, session, { ...tuning, now: () => clockB.now })
  const a = session.owner
  engines.push(a.engine, b.engine)
  a.engine.session.policies.setPolicy('default', policy)
  a.engine.session.appendMessage({ id: 'm1', role: 'assistant', content: 'The quick fox', timestamp: 1 })
  await settle(net, session.replicas)
  return { net, session, a, b, clockA, clockB }
}

/** Both devices offline: A writes model then temperature last; B writes model last. */
async function offlineEdits({ net, a, b, clockA, clockB }: Awaited<ReturnType<typeof twoDevices>>): Promise<void> {
  net.goOffline(a.node)
  net.goOffline(b.node)
  const sa = a.engine.session
  const sb = b.engine.session
  clockA.now = T0 + 100
  sa.setConfig('model', 'model-a')
  clockB.now = T0 + 200
  sb.setConfig('model', 'model-b')
  clockB.now = T0 + 300
  sb.setConfig('temperature', 0.9)
  clockA.now = T0 + 400
  sa.setConfig('temperature', 0.3)
  await Promise.all([a.engine.flush(), b.engine.flush()])
}

/** Reconnects one device, lets it sync with the relay, then the other. */
async function reconnect(net: SimNetwork, first: Replica, second: Replica, replicas: Replica[]): Promise<void> {
  net.goOnline(first.node)
  net.flush()
  await first.engine.whenIdle()
  await settle(net, replicas)
  net.goOnline(second.node)
  await settleWithChoices(net, replicas)
}

async function settleWithChoices(net: SimNetwork, replicas: Replica[]): Promise<void> {
  for (let round = 0; round < 10; round++) {
    await settle(net, replicas)
    await Promise.all(replicas.map((r) => r.engine.session.policies.idle()))
    if (replicas.every((r) => r.engine.status.unsealed === 0) && net.pending === 0) return
  }
  throw new Error('answers to user_choice kept coming')
}

const fields = (conflicts: ConflictInfo[]) => conflicts.map((c) => [c.field, c.values.map((v) => v.value), c.visible])

describe('two devices offline edit model and temperature, then reconnect', () => {
  for (const order of ['A first', 'B first'] as const) {
    const connect = (s: Awaited<ReturnType<typeof twoDevices>>) =>
      order === 'A first' ? reconnect(s.net, s.a, s.b, s.session.replicas) : reconnect(s.net, s.b, s.a, s.session.replicas)

    it(`timestamp (${order}): each key shows its latest write, on both devices, no conflict`, async () => {
      const s = await twoDevices('timestamp')
      await offlineEdits(s)
      await connect(s)
      assertConverged(s.session.replicas)
      expect(recordOf(s.a).config).toMatchObject({ model: 'model-b', temperature: 0.3 })
      expect(recordOf(s.b).conflicts).toEqual([])
    })

    it(`merge (${order}): scalars show the latest write, lists keep both devices' additions, no conflict`, async () => {
      const s = await twoDevices('merge')
      s.a.engine.session.setConfig('tools', ['search'])
      await settle(s.net, s.session.replicas)
      await offlineEdits(s)
      s.clockA.now = T0 + 500
      s.a.engine.session.setConfig('tools', ['search', 'code'])
      s.clockB.now = T0 + 600
      s.b.engine.session.setConfig('tools', ['browse'])
      await Promise.all([s.a.engine.flush(), s.b.engine.flush()])
      await connect(s)
      assertConverged(s.session.replicas)
      // B removed search and added browse; A added code: both changes stand.
      expect(recordOf(s.b).config).toMatchObject({ model: 'model-b', temperature: 0.3, tools: ['browse', 'code'] })
      expect(recordOf(s.a).conflicts).toEqual([])
    })

    it(`manual (${order}): both values of both keys are reported until a resolution replaces them`, async () => {
      const s = await twoDevices('manual')
      await offlineEdits(s)
      await connect(s)
      assertConverged(s.session.replicas)
      const record = recordOf(s.a)
      expect(fields(record.conflicts)).toEqual([
        ['config.model', ['model-a', 'model-b'], 'model-b'],
        ['config.temperature', [0.9, 0.3], 0.3],
      ])
      // Meanwhile the latest write is shown, as documented.
      expect(record.config).toMatchObject({ model: 'model-b', temperature: 0.3 })
      expect(s.b.engine.session.policies.conflicts()).toEqual(record.conflicts)

      s.b.engine.session.policies.resolveConflict('config.model', 'model-a')
      s.a.engine.session.policies.resolveConflict('config.temperature', 0.5)
      await settle(s.net, s.session.replicas)
      assertConverged(s.session.replicas)
      expect(recordOf(s.a).conflicts).toEqual([])
      expect(recordOf(s.a).config).toMatchObject({ model: 'model-a', temperature: 0.5 })

      // Later edits made in turn raise nothing.
      s.a.engine.session.setConfig('model', 'model-c')
      await settle(s.net, s.session.replicas)
      s.b.engine.session.setConfig('model', 'model-d')
      await settle(s.net, s.session.replicas)
      expect(recordOf(s.a).conflicts).toEqual([])
      expect(recordOf(s.a).config.model).toBe('model-d')
    })

    it(`user_choice (${order}): the application is asked once per key, and its answer reaches both devices`, async () => {
      const s = await twoDevices('user_choice')
      const asked: ConflictInfo[] = []
      // B's dialog keeps B's own value.
      s.b.engine.session.policies.setUserChoice(async (c) => {
        asked.push(c)
        return c.values.find((v) => v.device_id === s.b.engine.session.device)!.value
      })
      await offlineEdits(s)
      await connect(s)
      assertConverged(s.session.replicas)
      expect(fields(asked)).toEqual([
        ['config.model', ['model-a', 'model-b'], 'model-b'],
        ['config.temperature', [0.9, 0.3], 0.3],
      ])
      expect(asked.every((c) => c.policy === 'user_choice')).toBe(true)
      expect(recordOf(s.a).conflicts).toEqual([])
      expect(recordOf(s.a).config).toMatchObject({ model: 'model-b', temperature: 0.9 })
    })
  }

  it('two devices that answer the same dialog at once with one value converge with no conflict left', async () => {
    const s = await twoDevices('user_choice')
    const keepA = async (c: ConflictInfo) => c.values.find((v) => v.value === 'model-a')?.value ?? c.values[0]!.value
    s.a.engine.session.policies.setUserChoice(keepA)
    s.b.engine.session.policies.setUserChoice(keepA)
    await offlineEdits(s)
    await reconnect(s.net, s.a, s.b, s.session.replicas)
    assertConverged(s.session.replicas)
    expect(recordOf(s.a).conflicts).toEqual([])
    expect(recordOf(s.a).config.model).toBe('model-a')
  })
})

describe('message content edited on two devices at once', () => {
  async function editOffline(policy: ConflictPolicy) {
    const s = await twoDevices(policy)
    s.net.goOffline(s.a.node)
    s.net.goOffline(s.b.node)
    s.clockA.now = T0 + 100
    s.a.engine.session.policies.editMessage('m1', 'The quick brown fox')
    s.clockB.now = T0 + 200
    s.b.engine.session.policies.editMessage('m1', 'The quick fox jumps')
    await Promise.all([s.a.engine.flush(), s.b.engine.flush()])
    await reconnect(s.net, s.a, s.b, s.session.replicas)
    assertConverged(s.session.replicas)
    return s
  }

  it('merge: both edits are merged into the text', async () => {
    const s = await editOffline('merge')
    expect(recordOf(s.b).messages[0]!.content).toBe('The quick brown fox jumps')
    expect(recordOf(s.b).conflicts).toEqual([])
  })

  it('timestamp: the later edit shows whole', async () => {
    const s = await editOffline('timestamp')
    expect(recordOf(s.a).messages[0]!.content).toBe('The quick fox jumps')
    expect(recordOf(s.a).conflicts).toEqual([])
  })

  it('manual: both versions are reported as message.m1.content until resolved', async () => {
    const s = await editOffline('manual')
    expect(fields(recordOf(s.a).conflicts)).toEqual([['message.m1.content', ['The quick brown fox', 'The quick fox jumps'], 'The quick fox jumps']])
    s.a.engine.session.policies.resolveConflict('message.m1.content', 'The quick brown fox jumps')
    await settle(s.net, s.session.replicas)
    assertConverged(s.session.replicas)
    expect(recordOf(s.b).messages[0]!.content).toBe('The quick brown fox jumps')
    expect(recordOf(s.b).conflicts).toEqual([])
  })
})

describe('open conflicts are persisted', () => {
  async function reopen(r: Replica): Promise<SyncEngine> {
    const engine = await reopenReplica(r)
    engines.push(engine)
    return engine
  }

  async function openConflicts() {
    const s = await twoDevices('manual')
    await offlineEdits(s)
    s.a.engine.session.policies.editMessage('m1', 'edit a')
    s.b.engine.session.policies.editMessage('m1', 'edit b')
    await Promise.all([s.a.engine.flush(), s.b.engine.flush()])
    await reconnect(s.net, s.a, s.b, s.session.replicas)
    const record = recordOf(s.a)
    expect(record.conflicts.map((c) => c.field)).toEqual(['config.model', 'config.temperature', 'message.m1.content'])
    return { ...s, record }
  }

  const withoutTime = (r: SessionRecord) => ({ ...r, updated_at: 0 })

  it('a reload (a new engine on a copy of the wire doc) shows the same conflicts and values', async () => {
    const { a, record } = await openConflicts()
    const reopened = await reopen(a)
    expect(toRecord(reopened.session)).toEqual(record)
    expect(SessionRecordSchema.parse(toRecord(reopened.session)).conflicts).toHaveLength(3)
  })

  it('survive compaction: the snapshot alone carries them to a reload and a late joiner, who can resolve them', async () => {
    const { net, session, a, record } = await openConflicts()
    await a.engine.compact()
    await settle(net, session.replicas)
    const kinds = a.engine.wire.envelopes().map((e) => decodeEnvelope(e).header.kind)
    expect(kinds).toEqual(['snapshot'])

    const reopened = await reopen(a)
    expect(withoutTime(toRecord(reopened.session))).toEqual(withoutTime(record))

    const late = await addReplica(net, session, { compactAfter: null, batchWindowMs: 5 })
    engines.push(late.engine)
    await settle(net, session.replicas)
    expect(late.engine.stats.applied).toBe(0)
    expect(recordOf(late).conflicts).toEqual(record.conflicts)

    const policies = late.engine.session.policies
    for (const c of policies.conflicts()) policies.resolveConflict(c.field, c.values[0]!.value)
    await settle(net, session.replicas)
    assertConverged(session.replicas)
    expect(recordOf(a).conflicts).toEqual([])
    expect(recordOf(a).config).toMatchObject({ model: 'model-a', temperature: 0.9 })
  })
})
