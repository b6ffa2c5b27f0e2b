import * as Y from 'yjs'
import { afterEach, describe, expect, it } from 'vitest'
import { SessionDoc } from '@kai-sync/model'
import { toRecord } from '@kai-sync/model/record'
import {
  SessionKeyring,
  WebCryptoDeviceKey,
  ZERO_HASH,
  decodeEnvelope,
  deriveClientId,
  equalBytes,
  newStreamId,
  openEnvelope,
  randomBytes,
  sealEnvelope,
  toBase64Url,
  type DeviceKey,
  type Envelope,
  type EnvelopeHeader,
  type SessionKey,
} from '@kai-sync/crypto'
import { WireDoc } from './wire-doc'
import { SyncEngine, deviceIdOf, type Rejection } from './sync-engine'
import { createSession } from './session'
import { transportOrigin } from './origins'
import { planCompaction } from './compaction'
import { withoutDeletions } from './testing'

// Issue 12, items 1 and 2: a writer who signs whatever it likes. Each case
// crafts validly signed envelopes as a hostile member would, delivers them
// to several receivers in different orders, and checks that every receiver
// ends with the same verdict and that the honest writer loses nothing.

const engines: SyncEngine[] = []
afterEach(() => {
  for (const e of engines.splice(0)) e.destroy()
})

const ARRIVAL = transportOrigin('test')

interface World {
  owner: SyncEngine
  /** The cheating writer. */
  a: DeviceKey
  /** The honest writer. */
  b: DeviceKey
  key: SessionKey
  /** A new context holding the session's wire state: of a new device, unless `device` is given. */
  receiver(device?: DeviceKey): Promise<Receiver>
}

interface Receiver {
  engine: SyncEngine
  rejections: Rejection[]
  deliver(...envelopes: Envelope[]): Promise<void>
}

async function world(): Promise<World> {
  const owner = await createSession({ device: await WebCryptoDeviceKey.generate(), mode: 'desktop', agentId: 'a', userId: 'u', compactAfter: null })
  engines.push(owner)
  const a = await WebCryptoDeviceKey.generate()
  const b = await WebCryptoDeviceKey.generate()
  await owner.setRole(a.publicKey, 'writer')
  await owner.setRole(b.publicKey, 'writer')
  await owner.flush()
  const key = owner.keys.current
  const receiver = async (given?: DeviceKey): Promise<Receiver> => {
    const wire = new WireDoc()
    Y.applyUpdate(wire.doc, Y.encodeStateAsUpdate(owner.wire.doc))
    const device = given ?? (await WebCryptoDeviceKey.generate())
    const engine = await SyncEngine.open({ sessionId: owner.sessionId, wire, device, keys: new SessionKeyring([key]), mode: 'tab', compactAfter: null })
    engines.push(engine)
    const rejections: Rejection[] = []
    engine.on('rejected', (r) => rejections.push(r))
    // One arrival at a time, each processed before the next, as a transport would deliver them.
    const deliver = async (...envelopes: Envelope[]) => {
      for (const env of envelopes) {
        wire.doc.transact(() => wire.log.push([env.bytes]), ARRIVAL)
        await engine.whenIdle()
      }
    }
    return { engine, rejections, deliver }
  }
  return { owner, a, b, key, receiver }
}

/**
 * The Yjs update that appends one message to `doc` (a writer's session
 * state, written as `clientId`): each call continues that client's clocks,
 * as a real writer's next envelope does.
 */
function messageUpdate(clientId: number, id: string, author: string, doc = new Y.Doc()): Uint8Array {
  doc.clientID = clientId
  const before = Y.encodeStateVector(doc)
  new SessionDoc({ device: author, mode: 'tab', doc }).appendMessage({ id, role: 'user', content: `message ${id}`, timestamp: 1 })
  return Y.encodeStateAsUpdate(doc, before)
}

/** A writer's session state, copied: what it would write from a point in its past. */
function fork(doc: Y.Doc): Y.Doc {
  const copy = new Y.Doc()
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc))
  return copy
}

/**
 * An update envelope of `signer` on `stream` carrying message `id`, written
 * as the Yjs client the signer owns there, on top of `doc` (the stream's
 * state so far).
 */
async function message(w: World, signer: DeviceKey, stream: Uint8Array, id: string, header: Partial<Omit<EnvelopeHeader, 'device' | 'epoch'>> = {}, doc?: Y.Doc): Promise<Envelope> {
  const client = deriveClientId(signer.publicKey, stream)
  return sealEnvelope({
    header: { kind: 'update', sessionId: w.owner.sessionId, stream, seq: 1, prev: ZERO_HASH, createdAt: 1, clientIds: [client], covers: [], ...header },
    plaintext: messageUpdate(client, id, deviceIdOf(signer), doc),
    key: w.key,
    signer,
  })
}

const codes = (r: Receiver) => r.rejections.map((x) => `${x.code}${x.held ? ' (held)' : ''}`)

describe('a stream is its device\'s', () => {
  it('an envelope another device signs on an honest stream id never blocks that stream, whatever the order', async () => {
    const w = await world()
    const sb = newStreamId()
    const bDoc = new Y.Doc()
    const b1 = await message(w, w.b, sb, 'honest-b1', {}, bDoc)
    const b2 = await message(w, w.b, sb, 'honest-b2', { seq: 2, prev: b1.hash }, bDoc)
    // A copies B's stream id from b1's header and signs the next position, chained onto b1.
    const hijack = await message(w, w.a, sb, 'hijack-a', { seq: 2, prev: b1.hash })

    const first = await w.receiver()
    await first.deliver(b1, hijack, b2)
    const second = await w.receiver()
    await second.deliver(b1, b2, hijack)
    // Before b1, A's envelope is only a gap in a chain of A's own: held, then refused once b1 shows what it chains onto.
    const third = await w.receiver()
    await third.deliver(hijack, b1, b2)

    for (const r of [first, second, third]) {
      expect(r.engine.session.messageIds()).toEqual(['honest-b1', 'honest-b2'])
      expect(codes(r).at(-1)).toBe('stream_not_owned')
      expect(r.engine.status.held).toBe(0)
    }
    expect(codes(third)).toEqual(['gap (held)', 'stream_not_owned'])
    expect(toRecord(first.engine.session)).toEqual(toRecord(second.engine.session))
    expect(toRecord(first.engine.session)).toEqual(toRecord(third.engine.session))
  })
})

describe('equivocation', () => {
  it('two envelopes a device signed at one position freeze that stream on every receiver, in any order; its other streams apply', async () => {
    const w = await world()
    const sb = newStreamId()
    const bDoc = new Y.Doc()
    const two = await message(w, w.b, sb, 'two', {}, fork(bDoc))
    const one = await message(w, w.b, sb, 'one', {}, bDoc)
    const after = await message(w, w.b, sb, 'after-one', { seq: 2, prev: one.hash }, bDoc)
    const other = await message(w, w.b, newStreamId(), 'b-other-stream')
    const fromA = await message(w, w.a, newStreamId(), 'a-own')

    const orders = [
      [one, two, after, other, fromA],
      [two, one, after, other, fromA],
      [other, after, two, fromA, one],
    ]
    const receivers: Receiver[] = []
    for (const order of orders) {
      const r = await w.receiver()
      await r.deliver(...order)
      receivers.push(r)
    }
    // All at once, in one batch: neither of the two is applied.
    const batched = await w.receiver()
    batched.engine.wire.doc.transact(() => batched.engine.wire.log.push([one.bytes, two.bytes, after.bytes, other.bytes, fromA.bytes]), ARRIVAL)
    await batched.engine.whenIdle()
    receivers.push(batched)

    const both = [toBase64Url(one.hash), toBase64Url(two.hash)]
    for (const r of receivers) {
      const ids = r.engine.session.messageIds()
      expect(ids).toContain('b-other-stream')
      expect(ids).toContain('a-own')
      // Nothing after the fork point is applied anywhere.
      expect(ids).not.toContain('after-one')
      expect(r.engine.ledger.frozenAt(one.header)?.seq).toBe(1)
      const equivocations = r.rejections.filter((x) => x.code === 'equivocation')
      expect(equivocations.length).toBeGreaterThan(0)
      // 'after-one' held before the rival arrived is refused as a fork of the one applied.
      expect(r.rejections.every((x) => x.code === 'equivocation' || x.code === 'fork' || (x.code === 'gap' && x.held))).toBe(true)
      for (const hash of both) expect(equivocations.some((x) => x.message.includes(hash))).toBe(true)
      expect(r.engine.status.held).toBe(0)
    }
    // What stays different: a receiver that applied one of the two before the
    // other arrived cannot take it back (see docs/threat-model.md).
    expect(batched.engine.session.messageIds()).not.toContain('one')
    expect(batched.engine.session.messageIds()).not.toContain('two')
  })
})

describe('a snapshot suppresses only what it holds', () => {
  async function snapshot(w: World, signer: DeviceKey, id: string, covers: EnvelopeHeader['covers']): Promise<Envelope> {
    const stream = newStreamId()
    return sealEnvelope({
      header: { kind: 'snapshot', sessionId: w.owner.sessionId, stream, seq: 1, prev: ZERO_HASH, createdAt: 1, clientIds: [], covers },
      plaintext: messageUpdate(deriveClientId(signer.publicKey, stream), id, deviceIdOf(signer)),
      key: w.key,
      signer,
    })
  }

  it('an empty snapshot claiming an honest stream up to seq 1,000,000 hides none of its envelopes', async () => {
    const w = await world()
    const sb = newStreamId()
    const bDoc = new Y.Doc()
    const b1 = await message(w, w.b, sb, 'honest-b1', {}, bDoc)
    const b2 = await message(w, w.b, sb, 'honest-b2', { seq: 2, prev: b1.hash }, bDoc)
    const censor = await snapshot(w, w.a, 'snapshot-content', [{ device: w.b.publicKey, stream: sb, seq: 1_000_000, hash: randomBytes(32) }])
    const r = await w.receiver()
    await r.deliver(censor, b1, b2)
    expect(r.engine.session.messageIds()).toEqual(['honest-b1', 'honest-b2', 'snapshot-content'])
    expect(r.rejections).toEqual([])
    expect(r.engine.status.held).toBe(0)
  })

  it('a snapshot claiming a wrong hash at an honest stream\'s position does not fork the stream after it', async () => {
    const w = await world()
    const sb = newStreamId()
    const bDoc = new Y.Doc()
    const b1 = await message(w, w.b, sb, 'honest-b1', {}, bDoc)
    const b2 = await message(w, w.b, sb, 'honest-b2', { seq: 2, prev: b1.hash }, bDoc)
    const b3 = await message(w, w.b, sb, 'honest-b3', { seq: 3, prev: b2.hash }, bDoc)
    const censor = await snapshot(w, w.a, 'snapshot-content', [{ device: w.b.publicKey, stream: sb, seq: 2, hash: randomBytes(32) }])
    for (const order of [[censor, b1, b2, b3], [censor, b3, b1, b2], [b1, censor, b3, b2]]) {
      const r = await w.receiver()
      await r.deliver(...order)
      expect(r.engine.session.messageIds()).toEqual(['honest-b1', 'honest-b2', 'honest-b3', 'snapshot-content'])
      // A receiver that held b1 sees the snapshot claim it without its content.
      expect(r.rejections.filter((x) => !x.held).map((x) => x.code)).toEqual(order[0] === b1 ? ['over_claim'] : [])
      expect(r.engine.status.held).toBe(0)
    }
  })

  it('a writer that applied an over-claiming snapshot still compacts the envelopes it lied about, and a late joiner gets them all', async () => {
    const w = await world()
    const sb = newStreamId()
    const bDoc = new Y.Doc()
    const b1 = await message(w, w.b, sb, 'honest-b1', {}, bDoc)
    const b2 = await message(w, w.b, sb, 'honest-b2', { seq: 2, prev: b1.hash }, bDoc)
    const censor = await snapshot(w, w.a, 'snapshot-content', [{ device: w.b.publicKey, stream: sb, seq: 1_000_000, hash: randomBytes(32) }])
    // The compacting context is another of B's: a writer.
    const r = await w.receiver(w.b)
    await r.deliver(censor, b1, b2)
    const logged = (env: Envelope) => r.engine.wire.envelopes().some((e) => Buffer.from(e).equals(Buffer.from(env.bytes)))
    expect(await r.engine.compact()).toBeGreaterThanOrEqual(3)
    for (const env of [censor, b1, b2]) expect(logged(env)).toBe(false)
    const wire = new WireDoc()
    Y.applyUpdate(wire.doc, Y.encodeStateAsUpdate(r.engine.wire.doc))
    const late = await SyncEngine.open({ sessionId: w.owner.sessionId, wire, device: await WebCryptoDeviceKey.generate(), keys: new SessionKeyring([w.key]), mode: 'tab', compactAfter: null })
    engines.push(late)
    await late.whenIdle()
    expect(late.session.messageIds()).toEqual(['honest-b1', 'honest-b2', 'snapshot-content'])
    // B's next envelope still chains on, there and at the compacting context.
    const b3 = await message(w, w.b, sb, 'honest-b3', { seq: 3, prev: b2.hash }, bDoc)
    await r.deliver(b3)
    expect(r.engine.session.messageIds()).toContain('honest-b3')
    expect(r.rejections).toEqual([])
  })

  it('a snapshot holding more than its covers claim shows the same on a receiver that is past the covers and one that is not', async () => {
    // Found by hostile.fuzz.test.ts (seed 80): a receiver that already had
    // everything the covers name dropped the snapshot unopened, and never
    // showed the content it held beyond them; one behind applied it.
    const w = await world()
    const sb = newStreamId()
    const b1 = await message(w, w.b, sb, 'honest-b1')
    const extra = await snapshot(w, w.a, 'snapshot-content', [{ device: w.b.publicKey, stream: sb, seq: 1, hash: b1.hash }])
    const ahead = await w.receiver()
    await ahead.deliver(b1, extra)
    const behind = await w.receiver()
    await behind.deliver(extra, b1)
    for (const r of [ahead, behind]) {
      expect(r.engine.session.messageIds()).toEqual(['honest-b1', 'snapshot-content'])
      // It claims b1 without its content: said by the receiver that held b1 (see 'over_claim' below).
      expect(r.rejections.map((x) => x.code)).toEqual(r === ahead ? ['over_claim'] : [])
      expect(r.engine.status.held).toBe(0)
    }
    expect(toRecord(ahead.engine.session)).toEqual(toRecord(behind.engine.session))
  })

  it('an honest snapshot still suppresses the envelopes it holds', async () => {
    const w = await world()
    const writer = await SyncEngine.open({ sessionId: w.owner.sessionId, wire: w.owner.wire, device: w.b, keys: new SessionKeyring([w.key]), mode: 'tab', compactAfter: null })
    engines.push(writer)
    const envelopes: Uint8Array[] = []
    writer.wire.log.observe((e) => {
      for (const d of e.changes.delta) if (d.insert) envelopes.push(...(d.insert as Uint8Array[]))
    })
    for (const id of ['m1', 'm2', 'm3']) writer.session.appendMessage({ id, role: 'user', content: id, timestamp: 1 })
    await writer.flush()
    const sealed = [...envelopes]
    await writer.compact()
    const r = await w.receiver()
    // The receiver had none of it: it gets the snapshot, then the envelopes it replaced.
    r.engine.wire.doc.transact(() => r.engine.wire.log.push([writer.wire.log.get(writer.wire.log.length - 1)]), ARRIVAL)
    await r.engine.whenIdle()
    const before = r.engine.stats.applied
    r.engine.wire.doc.transact(() => r.engine.wire.log.push(sealed), ARRIVAL)
    await r.engine.whenIdle()
    expect(r.engine.stats.applied).toBe(before)
    expect(r.engine.session.messageIds()).toEqual(['m1', 'm2', 'm3'])
    expect(r.rejections).toEqual([])
  })
})

describe('a snapshot that claims what it does not hold is answered (over_claim)', () => {
  /** The honest owner writes and compacts; `peer` (another honest writer) applied the envelopes before. */
  async function compacted(w: World) {
    const peer = await w.receiver(w.b)
    const sealed: Envelope[] = []
    w.owner.wire.log.observe((e) => {
      for (const d of e.changes.delta) if (d.insert) for (const bytes of d.insert as Uint8Array[]) sealed.push(decodeEnvelope(bytes))
    })
    for (const id of ['m1', 'm2', 'm3']) {
      w.owner.session.appendMessage({ id, role: 'user', content: id, timestamp: 1 })
      await w.owner.flush()
    }
    await peer.deliver(...sealed.filter((e) => e.header.kind === 'update'))
    expect(await w.owner.compact()).toBeGreaterThanOrEqual(3)
    const honest = decodeEnvelope(w.owner.wire.log.get(w.owner.wire.log.length - 1))
    expect(honest.header.kind).toBe('snapshot')
    return { peer, honest }
  }

  /** What M seals: a snapshot of nothing, with the covers of `honest` copied from its header. */
  function emptyLie(w: World, honest: Envelope): Promise<Envelope> {
    return sealEnvelope({
      header: { kind: 'snapshot', sessionId: w.owner.sessionId, stream: newStreamId(), seq: 0, prev: ZERO_HASH, createdAt: 1, clientIds: [], covers: honest.header.covers },
      plaintext: Y.encodeStateAsUpdate(new Y.Doc()),
      key: w.key,
      signer: w.a,
    })
  }

  /** What arrives from a relay that accepted the lie: it inserted, and the honest snapshot deleted, in one update. */
  function attack(wire: WireDoc, lie: Envelope, honest: Envelope): void {
    wire.doc.transact(() => {
      const at = wire.envelopes().findIndex((b) => Buffer.from(b).equals(Buffer.from(honest.bytes)))
      if (at >= 0) wire.log.delete(at, 1)
      wire.log.push([lie.bytes])
    }, ARRIVAL)
  }

  async function lateJoiner(w: World, from: WireDoc): Promise<SyncEngine> {
    const wire = new WireDoc()
    Y.applyUpdate(wire.doc, Y.encodeStateAsUpdate(from.doc))
    const late = await SyncEngine.open({ sessionId: w.owner.sessionId, wire, device: await WebCryptoDeviceKey.generate(), keys: new SessionKeyring([w.key]), mode: 'tab', compactAfter: null })
    engines.push(late)
    await late.whenIdle()
    return late
  }

  it('an empty snapshot with copied covers: the honest writers report it and re-publish, and a late joiner has every honest message', async () => {
    const w = await world()
    const { peer, honest } = await compacted(w)
    const lie = await emptyLie(w, honest)
    // The cover rule lets the lie delete the honest snapshot (as the relay does).
    expect(planCompaction(w.owner.sessionId, lie, w.owner.wire.envelopes())(honest.bytes)).toBe(true)
    const ownerRejections: Rejection[] = []
    w.owner.on('rejected', (r) => ownerRejections.push(r))
    for (const [wire, engine] of [[w.owner.wire, w.owner], [peer.engine.wire, peer.engine]] as const) {
      attack(wire, lie, honest)
      await engine.whenIdle()
      // Without the answer, the log now holds only the lie.
      const late = await lateJoiner(w, wire)
      expect(late.session.messageIds()).toEqual(['m1', 'm2', 'm3'])
      // The lie is replaced by the answer, which covers what it claimed.
      expect(wire.envelopes().some((b) => Buffer.from(b).equals(Buffer.from(lie.bytes)))).toBe(false)
    }
    for (const rejections of [ownerRejections, peer.rejections]) {
      expect(rejections.map((r) => r.code)).toEqual(['over_claim'])
      expect(rejections[0]!.device).toBe(deviceIdOf(w.a))
    }
    expect(w.owner.status.refusedBy).toMatchObject({ over_claim: 1 })
  })

  it('a snapshot that holds every struct but leaves deletions out: the writers that applied them report it and re-publish, and a late joiner does not see a superseded write again', async () => {
    const w = await world()
    const peer = await w.receiver(w.b)
    const sealed: Envelope[] = []
    w.owner.wire.log.observe((e) => {
      for (const d of e.changes.delta) if (d.insert) for (const bytes of d.insert as Uint8Array[]) sealed.push(decodeEnvelope(bytes))
    })
    // The second write of a field deletes the first (ConfigRegister): an update with structs and a delete set.
    for (const model of ['first-model', 'second-model']) {
      w.owner.session.setConfig('model', model)
      await w.owner.flush()
    }
    w.owner.session.appendMessage({ id: 'm1', role: 'user', content: 'm1', timestamp: 1 })
    await w.owner.flush()
    await peer.deliver(...sealed.filter((e) => e.header.kind === 'update'))
    // Every update of the session so far (its creation too), for M's replay below.
    const updates = w.owner.wire.envelopes().map(decodeEnvelope).filter((e) => e.header.kind === 'update')
    expect(await w.owner.compact()).toBeGreaterThanOrEqual(3)
    const honest = decodeEnvelope(w.owner.wire.log.get(w.owner.wire.log.length - 1))
    expect(honest.header.kind).toBe('snapshot')
    // M replays the same updates into a doc that keeps deleted content, and
    // seals its state with the delete set cut off: every struct, no deletion.
    const replay = new Y.Doc({ gc: false })
    for (const env of updates) Y.applyUpdate(replay, await openEnvelope(env, new SessionKeyring([w.key])))
    const lie = await sealEnvelope({
      header: { kind: 'snapshot', sessionId: w.owner.sessionId, stream: newStreamId(), seq: 0, prev: ZERO_HASH, createdAt: 1, clientIds: [], covers: honest.header.covers },
      plaintext: withoutDeletions(Y.encodeStateAsUpdate(replay)),
      key: w.key,
      signer: w.a,
    })
    const heads = (e: SyncEngine) => e.session.configRegister.heads('model').map((x) => x.value)
    // What the lie would show alone: the superseded write back beside the second.
    const alone = new Y.Doc()
    Y.applyUpdate(alone, await openEnvelope(lie, new SessionKeyring([w.key])))
    expect(new SessionDoc({ device: 'x', mode: 'tab', doc: alone }).configRegister.heads('model').map((x) => x.value)).toEqual(['first-model', 'second-model'])
    const ownerRejections: Rejection[] = []
    w.owner.on('rejected', (r) => ownerRejections.push(r))
    for (const [wire, engine] of [[w.owner.wire, w.owner], [peer.engine.wire, peer.engine]] as const) {
      attack(wire, lie, honest)
      await engine.whenIdle()
      expect(heads(engine)).toEqual(['second-model'])
      // The lie is replaced by the answer, which holds the deletions.
      expect(wire.envelopes().some((b) => Buffer.from(b).equals(Buffer.from(lie.bytes)))).toBe(false)
      const late = await lateJoiner(w, wire)
      expect(heads(late)).toEqual(['second-model'])
      expect(late.session.messageIds()).toEqual(['m1'])
    }
    for (const rejections of [ownerRejections, peer.rejections]) {
      expect(rejections.map((r) => r.code)).toEqual(['over_claim'])
      expect(rejections[0]!.message).toMatch(/deletions they made/)
    }
  })

  it('an honest snapshot is not answered, nor is the answer', async () => {
    const w = await world()
    const { peer, honest } = await compacted(w)
    const before = peer.engine.wire.envelopes().length
    await peer.deliver(honest)
    expect(peer.rejections).toEqual([])
    // The peer sealed nothing in reply: the log gained only the honest snapshot.
    expect(peer.engine.wire.envelopes().length).toBe(before + 1)
    // The peer answers a lie; the owner, taking in that answer, does not answer it.
    const lie = await emptyLie(w, honest)
    attack(peer.engine.wire, lie, honest)
    await peer.engine.whenIdle()
    const answer = decodeEnvelope(peer.engine.wire.log.get(peer.engine.wire.log.length - 1))
    expect(answer.header.kind).toBe('snapshot')
    expect(equalBytes(answer.header.device, w.b.publicKey)).toBe(true)
    const ownerRejections: Rejection[] = []
    w.owner.on('rejected', (r) => ownerRejections.push(r))
    const ownerLog = w.owner.wire.envelopes().length
    w.owner.wire.doc.transact(() => w.owner.wire.log.push([answer.bytes]), ARRIVAL)
    await w.owner.whenIdle()
    expect(ownerRejections).toEqual([])
    expect(w.owner.wire.envelopes().length).toBe(ownerLog + 1)
  })
})

