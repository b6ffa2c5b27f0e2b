import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SessionKeyring, decodeEnvelope, equalBytes, type Envelope, type WebCryptoDeviceKey } from '@kai-sync/crypto'
import { SyncEngine, WireDoc, deviceIdOf } from '@kai-sync/engine'
import { connectRelay } from '@kai-sync/providers'
import { CloseCode } from './close-codes'
import { capability, closeDevice, eventually, updateFrame, wireOnRelay, type Device, type RawClient } from './testing/clients'
import {
  appendAs,
  cheatOn,
  crossRelaySession,
  freshReplica,
  message,
  refusals,
  sleep,
  startFederatedPair,
  startNodePair,
  watched,
  type FederatedPair,
  type NodePair,
  type Relays,
  type Replica,
} from './testing/cross-relay'

// Issue 12, item 1 ("a stream belongs to the device that signs it"),
// through two relays: a cheating writer signs an envelope on a stream id
// an honest device opened, and gets it to one relay before the honest
// device's envelopes on that stream do. Through one relay the cheat cannot
// (the relay knows the stream's device and refuses it with 4403,
// stream-integrity.test.ts); here the honest device opens the stream on
// relay B while the two relays cannot hear each other, the cheat reads
// its first envelope from B and signs the next position of that stream
// id on relay A, which knows no other device on it and takes it. Once the
// relays hear each other again, each holds envelopes of two devices on
// one stream id: the honest streams must keep flowing between them (none
// of their links refused), every honest replica must refuse the hijack
// (`stream_not_owned`, as cheating-member.test.ts) and show none of it,
// the honest device must go on writing that stream through either relay,
// and a client's hijack of it must still be refused with 4403 by both.

/** Another context of `key`'s device (a second tab), writing through `url`. */
async function contextOf(url: string, owner: Device, key: WebCryptoDeviceKey, name: string): Promise<Device> {
  const wire = new WireDoc()
  const engine = await SyncEngine.open({ sessionId: owner.engine.sessionId, wire, device: key, keys: new SessionKeyring([owner.engine.keys.current]), mode: 'tab', batchWindowMs: 5, compactAfter: null })
  const relay = await connectRelay(wire, url, () => capability(key, owner.engine.sessionId), engine)
  await eventually(() => engine.role === 'writer', 8000, `${name}: the writer role`)
  await relay.whenSynced()
  return { key, engine, wire, relay }
}

/** The wire doc as `client` heard it from its relay: its sync step 2 and every update since. */
function heard(client: RawClient): WireDoc {
  const doc = new Y.Doc()
  for (const m of client.received) {
    if (m[0] !== 0 || (m[1] !== 1 && m[1] !== 2)) continue
    const d = decoding.createDecoder(m)
    d.pos = 2
    Y.applyUpdate(doc, decoding.readVarUint8Array(d))
  }
  return new WireDoc(doc)
}

/** Runs `work` while the two relays cannot hear each other. */
async function whileApart<T>(relays: Relays, work: () => Promise<T>): Promise<T> {
  await relays.partition()
  try {
    return await work()
  } finally {
    await relays.heal()
  }
}

/** The last envelope `device` signed on `stream` that `wire` holds. */
function tipOf(wire: WireDoc, stream: Uint8Array, device: Uint8Array): Envelope | undefined {
  const on = wire
    .envelopes()
    .map((bytes) => decodeEnvelope(bytes))
    .filter((e) => e.header.kind !== 'presence' && e.header.kind !== 'snapshot' && equalBytes(e.header.stream, stream) && equalBytes(e.header.device, device))
  if (on.length === 0) return undefined
  return on.reduce((x, y) => (y.header.seq > x.header.seq ? y : x))
}

/**
 * The attack and what a user relies on after it. Honest: the owner and a
 * writer on relay A, a writer and a reader on relay B, the writers writing
 * throughout; while the relays are apart, B's writer opens a second
 * context on B (a new stream, which only B knows) and the cheat hijacks
 * that stream on A.
 */
async function hijackAcross(relays: Relays): Promise<void> {
  const { a, b } = relays
  const { owner, writerA, writerB, replicas, writers, cheat, room, honest, writeRound } = await crossRelaySession(relays)
  const fresh: Replica[] = []
  const missing = (r: Replica) => honest.filter((id) => r.engine.session.message(id) === undefined)
  const everywhere = (what: string) => eventually(() => replicas.every((r) => missing(r).length === 0), 20_000, what).catch(() => {})
  const refusedBefore = await Promise.all([refusals(a), refusals(b)])
  try {
    for (let i = 0; i < 3; i++) await writeRound(`before${i}`)
    const [toA, toB] = await Promise.all([cheatOn(a.url, room, cheat), cheatOn(b.url, room, cheat)])
    const wireClient = 0x5eed0000 + Math.floor(Math.random() * 0xffff)

    // A second context of B's writer, on B: its stream is known once it writes, which it does only while the relays are apart.
    const victim = watched('writer B\'s second context, on B', await contextOf(b.url, owner, writerB.key, 'writer B\'s second context'))
    replicas.push(victim)
    const stream = victim.engine.position.stream
    expect(owner.wire.envelopes().some((e) => equalBytes(decodeEnvelope(e).header.stream, stream))).toBe(false)
    const hijack = await whileApart(relays, async () => {
      writers.push(victim)
      await writeRound('apart0')
      await victim.engine.flush()
      await victim.relay.whenAcknowledged()
      expect(victim.engine.position.stream).toEqual(stream)
      // The cheat hears the new stream's envelope from B and signs the next position of that stream id, for A.
      let opened: Envelope | undefined
      await eventually(() => (opened = tipOf(heard(toB), stream, victim.key.publicKey)) !== undefined, 10_000, 'the cheat to hear the new stream from B')
      const hijack = await message(owner, cheat, stream, 'cheat-hijack', opened!.header.seq + 1, opened!.hash, new Y.Doc())
      toA.send(updateFrame(appendAs(toA.doc, wireClient, hijack)))
      const holds = (r: Replica) => r.wire.envelopes().some((e) => equalBytes(e, hijack.bytes))
      await eventually(() => holds(owner) && holds(writerA), 10_000, 'relay A to take the hijack')
      await writeRound('apart1')
      await sleep(300)
      return hijack
    })
    for (let i = 0; i < 3; i++) await writeRound(`after${i}`)
    // Honest streams flow between the relays again.
    await everywhere('every honest message at every replica')
    const refusesHijack = (r: Replica) => r.rejections.some((x) => !x.held && x.code === 'stream_not_owned' && x.device === deviceIdOf(cheat) && x.seq === hijack.header.seq)
    await eventually(() => replicas.every(refusesHijack), 5000, 'the hijack refused everywhere').catch(() => {})
    fresh.push(await freshReplica(a.url, owner, 'fresh on A', honest.length), await freshReplica(b.url, owner, 'fresh on B', honest.length))

    const verdict = (r: Replica) => ({
      replica: r.name,
      missingHonest: missing(r),
      showsTheHijack: r.engine.session.message('cheat-hijack') !== undefined,
      refusesTheHijack: refusesHijack(r),
      // Held for a while is fine (an honest envelope before its predecessor, the hijack before the envelope it chains onto); refused, only the hijack.
      refusedOnlyTheHijack: r.rejections.every((x) => x.held || (x.device === deviceIdOf(cheat) && x.code === 'stream_not_owned')),
      heldAtTheEnd: r.engine.heldSigners(),
    })
    for (const r of [...replicas, ...fresh]) {
      expect(verdict(r)).toEqual({ replica: r.name, missingHonest: [], showsTheHijack: false, refusesTheHijack: true, refusedOnlyTheHijack: true, heldAtTheEnd: [] })
    }
    // Every replica, live or fresh, on either relay, shows the same record.
    for (const r of [...replicas, ...fresh]) expect(r.engine.session.messageIds()).toEqual(owner.engine.session.messageIds())
    // No link refused, nor anyone: the hijack reached A as a stream A knew no device of.
    expect(await Promise.all([refusals(a), refusals(b)])).toEqual(refusedBefore)

    // The honest device goes on writing that stream, now through A (which took the hijack first).
    victim.relay.destroy()
    victim.relay = await connectRelay(victim.wire, a.url, () => capability(victim.key, room), victim.engine)
    await victim.relay.whenSynced()
    await writeRound('moved')
    await victim.engine.flush()
    await everywhere('every honest message at every replica, after B\'s second context moved to A')
    expect(replicas.map((r) => ({ replica: r.name, missingHonest: missing(r) }))).toEqual(replicas.map((r) => ({ replica: r.name, missingHonest: [] })))

    // A client's hijack of it is still refused, by either relay: the refusals grow by these two, the cheat's connections.
    const tip = tipOf(victim.wire, stream, victim.key.publicKey)!
    const again = await message(owner, cheat, stream, 'cheat-hijack-again', tip.header.seq + 1, tip.hash, new Y.Doc())
    toA.send(updateFrame(appendAs(toA.doc, wireClient + 1, again)))
    toB.send(updateFrame(appendAs(toB.doc, wireClient + 2, again)))
    const closed = await Promise.all([toA.closed, toB.closed].map((c) => Promise.race([c.then((x) => x.code), sleep(5000).then(() => 'still open')])))
    expect(closed).toEqual([CloseCode.Forbidden, CloseCode.Forbidden])
    expect(await Promise.all([refusals(a), refusals(b)])).toEqual(refusedBefore.map((n) => n + 1))
    for (const url of [a.url, b.url]) {
      const served = (await wireOnRelay(url, room, owner.key)).envelopes()
      expect(served.some((e) => equalBytes(e, again.bytes))).toBe(false)
    }
  } finally {
    for (const d of [...replicas, ...fresh]) closeDevice(d)
  }
}

describe('a hijack through two nodes of one deployment (Redis and PostgreSQL)', () => {
  let nodes: NodePair
  beforeAll(async () => {
    nodes = await startNodePair()
  }, 60_000)
  afterAll(() => nodes?.stop())

  it('with Redis paused: every honest message reaches every replica, each refuses the hijack, and both nodes still refuse a client\'s', async () => {
    await hijackAcross(nodes.paused())
  }, 90_000)

  it('while one node is cut from Redis (it reads the other\'s from storage): the same', async () => {
    await hijackAcross(nodes.cut())
  }, 90_000)
})

describe('a hijack through two federated relays', () => {
  let pair: FederatedPair
  beforeAll(async () => {
    pair = await startFederatedPair()
  }, 60_000)
  afterAll(() => pair?.stop())

  it('every honest message reaches every replica on either relay (no peer link refused), each refuses the hijack, and both relays still refuse a client\'s', async () => {
    await hijackAcross(pair.relays())
  }, 90_000)
})
