import * as Y from 'yjs'
import { afterEach, describe, expect, it } from 'vitest'
import { SessionKeyring, ZERO_HASH, decodeEnvelope, equalBytes, newStreamId, sealEnvelope } from '@kai-sync/crypto'
import { MemoryDroppedOwnStore, SimNetwork, assertConverged, createSimSession, addReplica, seededRandom, settle, type Replica, type SimSession } from './testing'
import { SyncEngine } from './sync-engine'
import { WireDoc } from './wire-doc'

// A writer that had not heard of a removal seals under the old epoch; the
// kai relay drops those envelopes from the log (StaleDrop); the writer
// re-seals what they carried once it holds the new key. Between the drop
// and the key, the writer's own disk is the only place that content is.

const engines: SyncEngine[] = []
afterEach(() => {
  for (const e of engines.splice(0)) e.destroy()
})

/** Delivers what is in flight over the links that are up, without healing any. */
async function deliver(net: SimNetwork, replicas: Replica[]): Promise<void> {
  for (let round = 0; round < 100; round++) {
    await Promise.all(replicas.map((r) => r.engine.whenIdle()))
    if (net.pending === 0) return
    net.flush()
  }
}

/**
 * What the kai relay does with a stale envelope it takes in (StaleDrop):
 * merges the writer's update and deletes the envelopes sealed under
 * `epoch` at or after `since` from its log; only that deletion goes back
 * to the writer here, ahead of anything else the relay holds.
 */
function relayDrops(hub: Y.Doc, writer: Replica, epoch: number, since: number): number {
  Y.applyUpdate(hub, Y.encodeStateAsUpdate(writer.engine.wire.doc, Y.encodeStateVector(hub)))
  const log = hub.getArray<Uint8Array>('log')
  const stale = log.toArray().flatMap((b, i) => {
    const h = decodeEnvelope(b).header
    return equalBytes(h.device, writer.device.publicKey) && h.epoch === epoch && h.createdAt >= since ? [i] : []
  })
  hub.transact(() => {
    for (const i of [...stale].reverse()) log.delete(i, 1)
  })
  Y.applyUpdate(writer.engine.wire.doc, Y.encodeStateAsUpdate(hub, Y.encodeStateVector(hub)))
  return stale.length
}

interface Race {
  net: SimNetwork
  s: SimSession
  writer: Replica
  reader: Replica
  removed: Replica
  disk: MemoryDroppedOwnStore
  now: () => number
}

/**
 * The owner removes a device while a writer is cut off; the writer, not
 * knowing, writes under epoch 0 (and compacts, if `compact`); the relay
 * drops what it sealed, and only that deletion reaches it: it still holds
 * no key of epoch 1.
 */
async function raceTheRemoval(compact: boolean): Promise<Race> {
  let clock = Date.now()
  const now = () => clock
  const net = new SimNetwork(seededRandom(5).gen, { reorder: 0, drop: 0, duplicate: 0 })
  const s = await createSimSession(net, { compactAfter: null, now })
  engines.push(s.owner.engine)
  const disk = new MemoryDroppedOwnStore()
  const writer = await addReplica(net, s, { compactAfter: null, now, dropped: disk })
  const reader = await addReplica(net, s, { role: 'reader', compactAfter: null, now })
  const removed = await addReplica(net, s, { compactAfter: null, now })
  engines.push(writer.engine, reader.engine, removed.engine)
  await settle(net, s.replicas)

  net.goOffline(writer.node)
  await s.owner.engine.removeDevice(removed.device.publicKey)
  await deliver(net, s.replicas)
  clock += 1000
  writer.engine.session.appendMessage({ id: 'during', role: 'user', content: 'written before the writer heard of the removal' })
  writer.appended.add('during')
  await writer.engine.flush()
  if (compact) expect(await writer.engine.compact()).not.toBeNull()
  expect(relayDrops(net.node('relay').doc, writer, 0, clock)).toBeGreaterThan(0)
  await writer.engine.whenIdle()
  expect(writer.engine.keys.epochs()).toEqual([0])
  expect(writer.engine.wire.envelopes().some((b) => equalBytes(decodeEnvelope(b).header.device, writer.device.publicKey) && decodeEnvelope(b).header.createdAt >= clock)).toBe(false)
  return { net, s, writer, reader, removed, disk, now }
}

/** Closes the writer and opens it again on what its disk holds: its wire doc and its store. */
async function reopen({ net, s, writer, disk, now }: Race): Promise<Replica> {
  const stored = new Y.Doc()
  Y.applyUpdate(stored, Y.encodeStateAsUpdate(writer.engine.wire.doc))
  writer.engine.destroy()
  engines.splice(engines.indexOf(writer.engine), 1)
  s.replicas.splice(s.replicas.indexOf(writer), 1)
  net.disconnect(writer.node, s.hub)
  const engine = await SyncEngine.open({
    sessionId: s.sessionId,
    wire: new WireDoc(stored),
    device: writer.device,
    box: writer.box,
    keys: new SessionKeyring([s.key]),
    mode: 'tab',
    compactAfter: null,
    now,
    dropped: disk,
  })
  engines.push(engine)
  const back: Replica = { ...writer, name: 'writer-reopened', engine, node: net.add('writer-reopened', stored), rejections: [] }
  engine.on('rejected', (x) => back.rejections.push(x))
  s.replicas.push(back)
  return back
}

/** The writer hears from the relay again, its key grant with it: what was dropped shows everywhere but on the removed device. */
async function expectResealed({ net, s, reader, removed }: Race, writer: Replica): Promise<void> {
  net.connect(writer.node, s.hub)
  await settle(net, s.replicas)
  expect(writer.engine.keys.epochs()).toContain(1)
  for (const r of [s.owner, reader, writer]) expect(r.engine.session.message('during')?.content, r.name).toBe('written before the writer heard of the removal')
  expect(removed.engine.session.message('during')).toBeUndefined()
  const stayed = [s.owner, reader, writer]
  for (const r of stayed) r.rejections = r.rejections.filter((x) => x.code !== 'stale_epoch')
  assertConverged(stayed)
  // A device that joins afterwards gets it from the log.
  const late = await SyncEngine.open({ sessionId: s.sessionId, wire: copyOf(net.node('relay').doc), device: reader.device, keys: new SessionKeyring([s.key, s.owner.engine.keys.get(1)!]), mode: 'tab', compactAfter: null })
  engines.push(late)
  await late.whenIdle()
  expect(late.session.message('during')?.content).toBe('written before the writer heard of the removal')
}

describe('a writer whose old-epoch envelopes the relay dropped', () => {
  it('reopens before it holds the new key and still re-seals what they carried: every replica shows it, the removed device does not', async () => {
    const race = await raceTheRemoval(false)
    expect(await race.disk.load(race.s.sessionId)).toHaveLength(1)
    // A control message is no session content a snapshot could re-seal: dropped, it is not kept.
    await race.writer.engine.sendControl(new TextEncoder().encode('{"type":"note"}'))
    expect(relayDrops(race.net.node('relay').doc, race.writer, 0, race.now())).toBe(1)
    await race.writer.engine.whenIdle()
    expect(await race.disk.load(race.s.sessionId)).toHaveLength(1)
    const writer = await reopen(race)
    await writer.engine.whenIdle()
    expect(writer.engine.keys.epochs()).toEqual([0])
    expect(writer.engine.session.message('during')).toBeDefined()
    await expectResealed(race, writer)
    // Re-sealed, the content needs no keeping any more.
    expect(await race.disk.load(race.s.sessionId)).toEqual([])
  })

  it('forgets what it kept only once its own store holds the snapshot that re-sealed it: a kill before then loses nothing', async () => {
    const race = await raceTheRemoval(false)
    const writer = await reopen(race)
    const disk = writer.engine.registerStore('local', 'disk')
    await expectResealed(race, writer)
    expect(await race.disk.load(race.s.sessionId)).toHaveLength(1)
    disk.acknowledge(Y.decodeStateVector(Y.encodeStateVector(writer.engine.wire.doc)))
    await writer.engine.whenIdle()
    expect(await race.disk.load(race.s.sessionId)).toEqual([])
  })

  it('compacted under the old epoch before the drop: the dropped snapshot is re-sealed too, whether the writer reopens or not', async () => {
    const stays = await raceTheRemoval(true)
    await expectResealed(stays, stays.writer)
    const reopens = await raceTheRemoval(true)
    expect(await reopens.disk.load(reopens.s.sessionId)).toHaveLength(1)
    const writer = await reopen(reopens)
    await expectResealed(reopens, writer)
    expect(await reopens.disk.load(reopens.s.sessionId)).toEqual([])
  })

  it('two writers each holding an old-epoch envelope of their own that no snapshot can cover do not answer each other\'s compactions for ever', async () => {
    let clock = Date.now()
    const now = () => clock
    const net = new SimNetwork(seededRandom(9).gen, { reorder: 0, drop: 0, duplicate: 0 })
    const s = await createSimSession(net, { compactAfter: null, now })
    const a = await addReplica(net, s, { compactAfter: null, now })
    const b = await addReplica(net, s, { compactAfter: null, now })
    const removed = await addReplica(net, s, { compactAfter: null, now })
    engines.push(...s.replicas.map((r) => r.engine))
    await settle(net, s.replicas)
    await s.owner.engine.removeDevice(removed.device.publicKey)
    clock += 1000
    // Bytes that are no Yjs update, sealed under the old epoch after it ended (a cheat's, or a bug's): every
    // replica refuses them, the signer's own too, so no snapshot ever covers them and they stay in the log.
    for (const w of [a, b]) {
      const env = await sealEnvelope({
        header: { kind: 'update', sessionId: s.sessionId, stream: newStreamId(), seq: 1, prev: ZERO_HASH, createdAt: clock, clientIds: [], covers: [] },
        plaintext: new Uint8Array([7, 7, 7]),
        key: s.key,
        signer: w.device,
      })
      w.engine.wire.append([env.bytes], 'test')
    }
    await settle(net, s.replicas)
    // Each compaction deletes the other writer's snapshot: that is no drop it owes a re-seal for.
    await a.engine.compact()
    await settle(net, s.replicas)
    await b.engine.compact()
    await settle(net, s.replicas)
    const snapshots = net.node('relay').doc.getArray<Uint8Array>('log').toArray().filter((e) => decodeEnvelope(e).header.kind === 'snapshot')
    expect(snapshots).toHaveLength(1)
  })

  it('keeps nothing that a snapshot in the log holds: another replica\'s compaction deletes its envelopes with none kept', async () => {
    const net = new SimNetwork(seededRandom(7).gen, { reorder: 0, drop: 0, duplicate: 0 })
    const s = await createSimSession(net, { compactAfter: null })
    engines.push(s.owner.engine)
    const disk = new MemoryDroppedOwnStore()
    const writer = await addReplica(net, s, { compactAfter: null, dropped: disk })
    engines.push(writer.engine)
    await settle(net, s.replicas)
    for (const id of ['one', 'two', 'three']) writer.engine.session.appendMessage({ id, role: 'user', content: id })
    await settle(net, s.replicas)
    await writer.engine.compact() // its own snapshot, deleted in turn by the owner's
    await settle(net, s.replicas)
    expect(await s.owner.engine.compact()).toBeGreaterThan(0)
    await settle(net, s.replicas)
    expect(writer.engine.wire.envelopes().every((b) => decodeEnvelope(b).header.kind === 'snapshot')).toBe(true)
    expect(await disk.load(s.sessionId)).toEqual([])
  })
})

function copyOf(doc: Y.Doc): WireDoc {
  const copy = new Y.Doc()
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc))
  return new WireDoc(copy)
}
