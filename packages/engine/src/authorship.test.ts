import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { afterEach, describe, expect, it } from 'vitest'
import { SessionDoc, encodeHlc, type ErrorCode } from '@kai-sync/model'
import { SessionKeyring, ZERO_HASH, decodeEnvelope, deriveClientId, newStreamId, sealEnvelope } from '@kai-sync/crypto'
import { SyncEngine, deviceIdOf, type Rejection } from './sync-engine'
import { WireDoc } from './wire-doc'
import { transportOrigin } from './origins'
import { SimNetwork, addReplica, assertConverged, createSimSession, seededRandom, settle, type Replica } from './testing'

// "Authorship is the signer's": a writer that signs whatever it likes runs
// the honest code under another device's id, or writes the session doc's
// maps directly, and every other replica refuses what it sealed, leaving
// its own session doc exactly as it was.

const engines: SyncEngine[] = []
const forgers: SessionDoc[] = []
afterEach(() => {
  for (const f of forgers.splice(0)) f.destroy()
  for (const e of engines.splice(0)) e.destroy()
})

const tuning = { batchWindowMs: 5, compactAfter: null }

async function world() {
  const net = new SimNetwork(seededRandom(12).gen, { reorder: 0, drop: 0, duplicate: 0 })
  const session = await createSimSession(net, tuning)
  const hostile = await addReplica(net, session, tuning)
  const honest = await addReplica(net, session, tuning)
  engines.push(...session.replicas.map((r) => r.engine))
  const owner = session.owner
  owner.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'hello', timestamp: 1 })
  owner.engine.session.appendAudit({ id: 'a1', action: 'tool.run', timestamp: 2 })
  await settle(net, session.replicas)
  return { net, session, owner, hostile, honest, receivers: [owner, honest], ownerId: deviceIdOf(owner.device), hostileId: deviceIdOf(hostile.device) }
}
type World = Awaited<ReturnType<typeof world>>

/** The honest code, run over the hostile replica's doc under another device's id. */
function forger(w: World, device: string): SessionDoc {
  const f = new SessionDoc({ device, mode: 'tab', doc: w.hostile.engine.session.doc })
  forgers.push(f)
  return f
}

/** A raw local write on the hostile replica's session doc (sealed like any other). */
function raw(w: World, fn: (doc: Y.Doc) => void): void {
  const doc = w.hostile.engine.session.doc
  doc.transact(() => fn(doc))
}

type RawItem = { parent: Y.ID; key: string; value: unknown } | { origin: Y.ID; value: unknown }

/**
 * Bytes Yjs's own API never writes but any signer can: map items set with
 * no left neighbour into a key that has one, a replacement without the
 * deletion Yjs pairs with it, a deletion of one item alone. Sealed by the
 * hostile device on a fresh stream of its own and put into its wire doc.
 */
async function sealRaw(w: World, raw: { items?: RawItem[]; deletes?: Y.ID[] }): Promise<void> {
  const stream = newStreamId()
  const client = deriveClientId(w.hostile.device.publicKey, stream)
  const items = raw.items ?? []
  const enc = new Y.UpdateEncoderV1()
  encoding.writeVarUint(enc.restEncoder, items.length > 0 ? 1 : 0) // clients
  if (items.length > 0) {
    encoding.writeVarUint(enc.restEncoder, items.length)
    enc.writeClient(client)
    encoding.writeVarUint(enc.restEncoder, 0)
    items.forEach((it, clock) => {
      const id = Y.createID(client, clock)
      const content = new Y.ContentAny([it.value])
      const item = 'origin' in it ? new Y.Item(id, null, it.origin, null, null, null, null, content) : new Y.Item(id, null, null, null, null, it.parent, it.key, content)
      item.write(enc, 0)
    })
  }
  const deletes = raw.deletes ?? []
  encoding.writeVarUint(enc.restEncoder, deletes.length)
  for (const d of deletes) {
    encoding.writeVarUint(enc.restEncoder, d.client)
    encoding.writeVarUint(enc.restEncoder, 1)
    encoding.writeVarUint(enc.restEncoder, d.clock)
    encoding.writeVarUint(enc.restEncoder, 1)
  }
  const header = { kind: 'update' as const, sessionId: w.session.sessionId, stream, seq: 1, prev: ZERO_HASH, createdAt: Date.now(), clientIds: items.length > 0 ? [client] : [], covers: [] }
  const env = await sealEnvelope({ header, plaintext: enc.toUint8Array(), key: w.session.key, signer: w.hostile.device })
  w.hostile.engine.wire.doc.transact(() => w.hostile.engine.wire.log.push([env.bytes]), transportOrigin('hostile'))
}

/** The id of the item holding `key` in a map of the receivers' docs. */
function itemOf(map: Y.Map<unknown>, key: string): Y.ID {
  return (map as unknown as { _map: Map<string, Y.Item> })._map.get(key)!.id
}

/** Runs an attack on the hostile replica; returns what each honest receiver refused. Their session docs must not change. */
async function attack(w: World, fn: () => unknown): Promise<ErrorCode[][]> {
  const before = w.receivers.map((r) => Y.encodeStateAsUpdate(r.engine.session.doc))
  const from = w.receivers.map((r) => r.rejections.length)
  await fn()
  await w.hostile.engine.flush()
  await settle(w.net, w.session.replicas)
  return w.receivers.map((r, i) => {
    expect(Y.encodeStateAsUpdate(r.engine.session.doc)).toEqual(before[i])
    return r.rejections.slice(from[i]).map((x) => x.code)
  })
}

describe('authorship is the signer\'s', () => {
  it('forged_author: a message appended as another device', async () => {
    const w = await world()
    expect(await attack(w, () => forger(w, w.ownerId).appendMessage({ id: 'm2', role: 'user', content: 'I never said this' }))).toEqual([['forged_author'], ['forged_author']])
    expect(w.honest.engine.session.message('m2')).toBeUndefined()
  })

  it('forged_author: an audit entry whose actor is another device', async () => {
    const w = await world()
    expect(await attack(w, () => forger(w, w.ownerId).appendAudit({ id: 'a2', action: 'session.deleted' }))).toEqual([['forged_author'], ['forged_author']])
  })

  it('forged_author: a config write, a policy setting and a message edit naming another device', async () => {
    for (const write of [
      (f: SessionDoc) => f.setConfig('model', 'forged'),
      (f: SessionDoc) => f.policies.setPolicy('default', 'manual'),
      (f: SessionDoc) => f.policies.editMessage('m1', 'rewritten'),
    ]) {
      const w = await world()
      expect(await attack(w, () => write(forger(w, w.ownerId)))).toEqual([['forged_author'], ['forged_author']])
    }
  })

  it.each([
    ['names its signer but carries another device\'s clock', (w: World) => ({ clock: w.ownerId, device: w.hostileId })],
    ['carries its signer\'s clock but names another device', (w: World) => ({ clock: w.hostileId, device: w.ownerId })],
  ])('forged_author: a config write that %s', async (_, who) => {
    const w = await world()
    const { clock, device } = who(w)
    const hlc = encodeHlc({ wall: Date.now() + 1000, counter: 0, device: clock })
    const write = { field: 'model', value: 'forged', hlc, device, mode: 'tab', timestamp: Date.now() }
    expect(await attack(w, () => raw(w, (doc) => doc.getMap('config').set(`model#${hlc}#${doc.clientID}`, write)))).toEqual([['forged_author'], ['forged_author']])
  })

  it('forged_author: a memory snapshot authored as another device', async () => {
    const w = await world()
    expect(await attack(w, () => forger(w, w.ownerId).addMemory({ id: 'mem', data: { fact: 'forged' } }))).toEqual([['forged_author'], ['forged_author']])
  })

  it('forged_author: a stop request made in another device\'s name', async () => {
    const w = await world()
    expect(await attack(w, () => forger(w, w.ownerId).requestControl('stop', 'm1', 'c1'))).toEqual([['forged_author'], ['forged_author']])
    expect(w.honest.engine.session.controlsFor('m1')).toEqual([])
  })

  it('forged_author: another device\'s stop request overwritten or deleted, even naming the signer', async () => {
    for (const change of [
      (w: World) => raw(w, (doc) => doc.getMap('controls').set('c1', { ...w.owner.engine.session.control('c1')!, device: w.hostileId, kind: 'retry' })),
      (w: World) => raw(w, (doc) => doc.getMap('controls').delete('c1')),
    ]) {
      const w = await world()
      w.owner.engine.session.requestControl('stop', 'm1', 'c1')
      await settle(w.net, w.session.replicas)
      expect(await attack(w, () => change(w))).toEqual([['forged_author'], ['forged_author']])
      expect(w.honest.engine.session.controlsFor('m1').map((c) => c.kind)).toEqual(['stop'])
    }
  })

  it('audit_rewrite: an existing audit entry overwritten, even naming the signer', async () => {
    const w = await world()
    const entry = { ...w.owner.engine.session.auditEntry('a1')!, actor: w.hostileId, action: 'nothing.happened' }
    expect(await attack(w, () => raw(w, (doc) => doc.getMap('audit').set('a1', entry)))).toEqual([['audit_rewrite'], ['audit_rewrite']])
    expect(w.honest.engine.session.auditEntry('a1')?.action).toBe('tool.run')
  })

  it('audit_rewrite: a crafted replacement that leaves out the deletion Yjs pairs with it', async () => {
    const w = await world()
    const entry = { ...w.owner.engine.session.auditEntry('a1')!, actor: w.hostileId, action: 'nothing.happened' }
    const a1 = itemOf(w.owner.engine.session.doc.getMap('audit'), 'a1')
    expect(await attack(w, () => sealRaw(w, { items: [{ origin: a1, value: entry }] }))).toEqual([['audit_rewrite'], ['audit_rewrite']])
  })

  it('audit_rewrite: an audit entry deleted', async () => {
    const w = await world()
    expect(await attack(w, () => raw(w, (doc) => doc.getMap('audit').delete('a1')))).toEqual([['audit_rewrite'], ['audit_rewrite']])
    expect(w.honest.engine.session.auditEntry('a1')).toBeDefined()
  })

  it('forged_author: another device\'s message given a new author, replaced, or deleted', async () => {
    for (const write of [
      (doc: Y.Doc, self: string) => (doc.getMap('history').get('m1') as Y.Map<unknown>).set('info', { role: 'user', timestamp: 1, author: self }),
      (doc: Y.Doc, self: string) => {
        const m = new Y.Map<unknown>()
        m.set('info', { role: 'user', timestamp: 1, author: self })
        m.set('status', 'complete')
        m.set('content', new Y.Text('mine now'))
        doc.getMap('history').set('m1', m)
      },
      (doc: Y.Doc) => doc.getMap('history').delete('m1'),
    ]) {
      const w = await world()
      expect(await attack(w, () => raw(w, (doc) => write(doc, w.hostileId)))).toEqual([['forged_author'], ['forged_author']])
      expect(w.honest.engine.session.message('m1')).toMatchObject({ content: 'hello', author: w.ownerId })
    }
  })

  it('forged_author: a second info set beside an existing message\'s own, to race it, even naming the signer', async () => {
    const w = await world()
    const m1 = w.owner.engine.session.doc.getMap('history').get('m1') as Y.Map<unknown>
    const parent = (m1 as unknown as { _item: Y.Item })._item.id
    expect(await attack(w, () => sealRaw(w, { items: [{ parent, key: 'info', value: { role: 'user', timestamp: 1, author: w.hostileId } }] }))).toEqual([['forged_author'], ['forged_author']])
  })

  const history = (w: World) => w.owner.engine.session.doc.getMap('history')
  const message = (w: World) => itemOf(history(w), 'm1')
  const info = (w: World) => itemOf(history(w).get('m1') as Y.Map<unknown>, 'info')
  it.each([
    ['info replaced without deleting it', (w: World) => ({ items: [{ origin: info(w), value: { role: 'user', timestamp: 1, author: w.hostileId } }] })],
    ['message replaced without deleting it', (w: World) => ({ items: [{ origin: message(w), value: 'not a message any more' }] })],
    ['info deleted alone', (w: World) => ({ deletes: [info(w)] })],
    ['message deleted alone', (w: World) => ({ deletes: [message(w)] })],
  ])('forged_author: crafted bytes: a message\'s %s', async (_, raw) => {
    const w = await world()
    expect(await attack(w, () => sealRaw(w, raw(w)))).toEqual([['forged_author'], ['forged_author']])
    expect(w.honest.engine.session.message('m1')).toMatchObject({ content: 'hello', author: w.ownerId })
  })

  it('honest traffic is untouched: each device writes as itself, into its own and others\' entries', async () => {
    const w = await world()
    const mine = w.hostile.engine.session
    const theirs = w.owner.engine.session
    theirs.startStream({ id: 'r1', role: 'assistant' })
    theirs.streamText('r1', 'partial')
    await settle(w.net, w.session.replicas)
    mine.appendMessage({ id: 'm2', role: 'assistant', content: 'hi' })
    mine.appendAudit({ id: 'a2', action: 'read' })
    mine.addMemory({ id: 'mem', data: { fact: 'tea' } })
    mine.setConfig('model', 'mine')
    mine.policies.setPolicy('default', 'manual')
    mine.policies.editMessage('m1', 'hello, edited')
    mine.streamText('r1', ' and continued elsewhere')
    mine.finishStream('r1')
    mine.requestControl('stop', 'r1', 'stop-r1')
    theirs.setConfig('model', 'theirs')
    await settle(w.net, w.session.replicas)
    mine.setConfig('model', 'resolved')
    await settle(w.net, w.session.replicas)
    assertConverged(w.session.replicas)
    expect(w.honest.engine.session.message('r1')).toMatchObject({ content: 'partial and continued elsewhere', status: 'complete', author: w.ownerId })
    expect(w.honest.engine.session.auditEntry('a2')?.actor).toBe(w.hostileId)
    expect(w.honest.engine.session.controlsFor('r1')).toMatchObject([{ kind: 'stop', device: w.hostileId }])
  })
})

describe('a verdict that needs items not here yet waits for them', () => {
  /** A fresh context of the honest device, fed the given envelopes by hand in the given order. */
  async function receiver(w: World): Promise<{ engine: SyncEngine; rejections: Rejection[]; deliver: (envelopes: Uint8Array[]) => Promise<void> }> {
    const wire = new WireDoc()
    Y.applyUpdate(wire.doc, Y.encodeStateAsUpdate(w.owner.engine.wire.doc))
    const engine = await SyncEngine.open({ sessionId: w.session.sessionId, wire, device: w.honest.device, keys: new SessionKeyring([w.session.key]), mode: 'sidepanel', ...tuning })
    engines.push(engine)
    const rejections: Rejection[] = []
    engine.on('rejected', (r) => rejections.push(r))
    const deliver = async (envelopes: Uint8Array[]) => {
      for (const bytes of envelopes) wire.doc.transact(() => wire.log.push([bytes]), transportOrigin('test'))
      await engine.whenIdle()
    }
    return { engine, rejections, deliver }
  }

  /** The envelopes in the owner's log since `known`, split by signer. */
  function newEnvelopes(w: World, known: number, signer: Replica): { by: Uint8Array[]; others: Uint8Array[] } {
    const fresh = w.owner.engine.wire.envelopes().slice(known)
    const mine = (b: Uint8Array) => deviceIdOf(decodeEnvelope(b).header.device) === deviceIdOf(signer.device)
    return { by: fresh.filter(mine), others: fresh.filter((b) => !mine(b)) }
  }

  it.each([
    ['text streamed into it', (s: SessionDoc) => s.streamText('r1', ' and more'), 'draft and more', 'streaming'],
    ['its stream finished', (s: SessionDoc) => s.finishStream('r1'), 'draft', 'complete'],
  ])('an honest change of a message that has not arrived (%s) is held, then applied after it', async (_, change, content, status) => {
    const w = await world()
    const r = await receiver(w)
    const known = w.owner.engine.wire.envelopes().length
    w.owner.engine.session.startStream({ id: 'r1', role: 'assistant', content: 'draft' })
    await settle(w.net, w.session.replicas)
    change(w.hostile.engine.session)
    await settle(w.net, w.session.replicas)
    const { by, others } = newEnvelopes(w, known, w.hostile)
    await r.deliver(by)
    expect(r.rejections.map((x) => [x.code, x.held])).toEqual([['gap', true]])
    expect(r.engine.session.message('r1')).toBeUndefined()
    await r.deliver(others)
    expect(r.rejections.filter((x) => !x.held)).toEqual([])
    expect(r.engine.status.held).toBe(0)
    expect(r.engine.session.message('r1')).toMatchObject({ content, status })
  })

  it('a deletion of an audit entry that has not arrived is refused once it does, as everywhere else', async () => {
    const w = await world()
    const r = await receiver(w)
    const known = w.owner.engine.wire.envelopes().length
    w.owner.engine.session.appendAudit({ id: 'a2', action: 'handoff.initiated' })
    await settle(w.net, w.session.replicas)
    expect(await attack(w, () => raw(w, (doc) => doc.getMap('audit').delete('a2')))).toEqual([['audit_rewrite'], ['audit_rewrite']])
    const { by, others } = newEnvelopes(w, known, w.hostile)
    await r.deliver(by)
    expect(r.rejections.map((x) => [x.code, x.held])).toEqual([['gap', true]])
    await r.deliver(others)
    expect(r.rejections.filter((x) => !x.held).map((x) => x.code)).toEqual(['audit_rewrite'])
    expect(r.engine.session.auditEntry('a2')?.action).toBe('handoff.initiated')
  })
})
