import * as Y from 'yjs'
import { afterEach, describe, expect, it } from 'vitest'
import { SessionKeyring, decodeEnvelope } from '@kai-sync/crypto'
import { WireDoc } from './wire-doc'
import { SyncEngine } from './sync-engine'
import { SimNetwork, addReplica, assertConverged, createSimSession, recordOf, seededRandom, settle } from './testing'

const engines: SyncEngine[] = []
afterEach(() => {
  for (const e of engines.splice(0)) e.destroy()
})

async function pair(tuning: Parameters<typeof createSimSession>[1] = {}) {
  const net = new SimNetwork(seededRandom(1).gen, { reorder: 0, drop: 0, duplicate: 0 })
  const session = await createSimSession(net, { batchWindowMs: 5, compactAfter: null, ...tuning })
  const other = await addReplica(net, session, { batchWindowMs: 5, compactAfter: null, ...tuning })
  engines.push(...session.replicas.map((r) => r.engine))
  await settle(net, session.replicas)
  return { net, session, owner: session.owner, other }
}

describe('SyncEngine', () => {
  it('a message appended on one device shows on the other, through a keyless relay', async () => {
    const { net, session, owner, other } = await pair()
    owner.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'hello' })
    other.engine.session.appendMessage({ id: 'm2', role: 'assistant', content: 'hi there' })
    await settle(net, session.replicas)
    expect(recordOf(other).messages.map((m) => m.content)).toEqual(['hello', 'hi there'])
    assertConverged(session.replicas)
    expect(owner.engine.status.state).toBe('saved')
  })

  it('batches a token stream: 100 tokens within one window make one envelope', async () => {
    const { net, session, owner, other } = await pair({ batchWindowMs: 1000 })
    const s = owner.engine.session
    s.startStream({ id: 'reply', role: 'assistant' })
    for (let i = 0; i < 100; i++) s.streamText('reply', `t${i} `)
    const before = owner.engine.stats.sealed
    await owner.engine.flush()
    expect(owner.engine.stats.sealed - before).toBe(1)
    await settle(net, session.replicas)
    expect(other.engine.session.message('reply')!.content.split(' ')).toHaveLength(101)
  })

  it('a reader may not write: its session doc refuses and nothing is sealed', async () => {
    const net = new SimNetwork(seededRandom(2).gen, { reorder: 0, drop: 0, duplicate: 0 })
    const session = await createSimSession(net, { compactAfter: null })
    const reader = await addReplica(net, session, { role: 'reader', compactAfter: null })
    engines.push(...session.replicas.map((r) => r.engine))
    await settle(net, session.replicas)
    expect(reader.engine.role).toBe('reader')
    expect(() => reader.engine.session.appendMessage({ id: 'x', role: 'user', content: 'no' })).toThrow(/forbidden/)
    expect(reader.engine.stats.sealed).toBe(0)
  })

  it('compaction replaces the envelopes with one snapshot and a late joiner loads it alone', async () => {
    const { net, session, owner, other } = await pair()
    for (let i = 0; i < 30; i++) {
      ;(i % 2 ? owner : other).engine.session.appendMessage({ id: `m${i}`, role: 'user', content: `message ${i}`, timestamp: i })
      await (i % 2 ? owner : other).engine.flush()
    }
    await settle(net, session.replicas)
    const before = owner.engine.wire.log.length
    expect(before).toBeGreaterThanOrEqual(30)
    const deleted = await owner.engine.compact()
    expect(deleted).toBe(before)
    await settle(net, session.replicas)
    expect(owner.engine.wire.log.length).toBe(1)
    expect(decodeEnvelope(owner.engine.wire.log.get(0)).header.kind).toBe('snapshot')

    const late = await addReplica(net, session, { compactAfter: null })
    engines.push(late.engine)
    await settle(net, session.replicas)
    expect(late.engine.stats.applied).toBe(0)
    expect(late.engine.stats.snapshots).toBe(1)
    assertConverged(session.replicas)
  })

  it('an offline device keeps writing; what it wrote survives a compaction it did not see', async () => {
    const { net, session, owner, other } = await pair()
    net.goOffline(other.node)
    other.engine.session.appendMessage({ id: 'offline-1', role: 'user', content: 'written on the train' })
    await other.engine.flush()
    owner.engine.session.appendMessage({ id: 'online-1', role: 'user', content: 'at home' })
    await owner.engine.flush()
    await owner.engine.compact()
    other.appended.add('offline-1')
    await settle(net, session.replicas)
    assertConverged(session.replicas)
    expect(owner.engine.session.messageIds()).toEqual(expect.arrayContaining(['offline-1', 'online-1']))
  })

  it('reloads: a new context on the same wire doc rebuilds the session and signs a new stream', async () => {
    const { owner } = await pair()
    owner.engine.session.appendMessage({ id: 'm', role: 'user', content: 'persisted' })
    await owner.engine.flush()
    const copy = new Y.Doc()
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(owner.engine.wire.doc))
    const reopened = await SyncEngine.open({
      sessionId: owner.engine.sessionId,
      wire: new WireDoc(copy),
      device: owner.device,
      keys: new SessionKeyring([owner.engine.keys.current]),
      mode: 'sidepanel',
    })
    engines.push(reopened)
    expect(reopened.session.message('m')!.content).toBe('persisted')
    expect(reopened.position.stream).not.toEqual(owner.engine.position.stream)
    expect(reopened.canWrite).toBe(true)
  })
})

