import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SessionDoc } from '@kai-sync/model'
import { SessionKeyring, WebCryptoDeviceKey, ZERO_HASH, deriveClientId, equalBytes, newStreamId, sealEnvelope, toBase64Url, type DeviceKey, type Envelope } from '@kai-sync/crypto'
import { SyncEngine, WireDoc, deviceIdOf, type Rejection } from '@kai-sync/engine'
import { connectRelay } from '@kai-sync/providers'
import { freePort } from '@kai-sync/process-harness'
import { startPostgres, type PostgresServer } from '@kai-sync/storage/testing'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { startRedis, type RedisServer } from './testing/redis-server'
import { startTcpProxy, type TcpProxy } from './testing/tcp-proxy'
import { capability, closeDevice, eventually, memberDevice, ownerDevice, rawClient, updateFrame, wireOnRelay, type Device, type RawClient } from './testing/clients'

// Issue 12, item 1, through two relays: a cheating writer signs two
// envelopes at one position of its stream and gives each to a different
// relay first, while the two relays cannot hear each other (Redis paused
// for two nodes of one deployment; the peer links cut for two federated
// relays). Through one relay this is refused (stream-integrity.test.ts);
// here each relay takes the one it got. Once they hear each other again,
// every honest replica on either relay must freeze the stream at that
// position and report both hashes as `equivocation`, as a replica given
// both does (cheating-member.test.ts), and the honest streams must keep
// flowing between the relays. The cheat sends its two either as one Yjs
// item id (one wire client and clock: each relay already holds an item
// there when the other's arrives) or as two.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Replica extends Device {
  name: string
  rejections: Rejection[]
}

function watched(name: string, d: Device): Replica {
  const rejections: Rejection[] = []
  d.engine.on('rejected', (r) => rejections.push(r))
  return { ...d, name, rejections }
}

/** A raw connection of `device` holding the room's wire doc as the relay served it, to send crafted updates on. */
async function cheatOn(url: string, room: string, device: DeviceKey): Promise<RawClient & { doc: Y.Doc }> {
  const client = await rawClient(url, room, await capability(device, room))
  await eventually(() => client.received.length > 0, 5000, 'the relay\'s sync step 1')
  client.send(new Uint8Array([0, 0, 1, 0]))
  await eventually(() => client.received.some((m) => m[0] === 0 && m[1] === 1), 5000, 'sync step 2')
  const d = decoding.createDecoder(client.received.find((m) => m[0] === 0 && m[1] === 1)!)
  d.pos = 2
  const doc = new Y.Doc()
  Y.applyUpdate(doc, decoding.readVarUint8Array(d))
  return Object.assign(client, { doc })
}

/** The update that appends `env` to a copy of `base`, written as wire client `clientId` (so two calls can share one item id). */
function appendAs(base: Y.Doc, clientId: number, env: Envelope): Uint8Array {
  const copy = new Y.Doc()
  copy.clientID = clientId
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(base))
  const before = Y.encodeStateVector(copy)
  new WireDoc(copy).append([env.bytes], null)
  return Y.encodeStateAsUpdate(copy, before)
}

/** An envelope of `signer` on `stream` carrying message `id`, on top of `doc` (the stream's session state so far). */
async function message(owner: Device, signer: DeviceKey, stream: Uint8Array, id: string, seq: number, prev: Uint8Array, doc: Y.Doc): Promise<Envelope> {
  const client = deriveClientId(signer.publicKey, stream)
  doc.clientID = client
  const before = Y.encodeStateVector(doc)
  new SessionDoc({ device: deviceIdOf(signer), mode: 'tab', doc }).appendMessage({ id, role: 'user', content: `message ${id}`, timestamp: 1 })
  return sealEnvelope({
    header: { kind: 'update', sessionId: owner.engine.sessionId, stream, seq, prev, createdAt: 1, clientIds: [client], covers: [] },
    plaintext: Y.encodeStateAsUpdate(doc, before),
    key: owner.engine.keys.current,
    signer,
  })
}

function fork(doc: Y.Doc): Y.Doc {
  const copy = new Y.Doc()
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc))
  return copy
}

/** A new context that opens the session from `url` alone, once it has synced and judged what it got. */
async function freshReplica(url: string, owner: Device, name: string, expected: number): Promise<Replica> {
  const key = owner.key
  const wire = new WireDoc()
  const engine = await SyncEngine.open({ sessionId: owner.engine.sessionId, wire, device: key, keys: new SessionKeyring([owner.engine.keys.current]), mode: 'tab', compactAfter: null })
  const rejections: Rejection[] = []
  engine.on('rejected', (r) => rejections.push(r))
  const relay = await connectRelay(wire, url, () => capability(key, owner.engine.sessionId))
  await relay.whenSynced()
  await eventually(() => engine.session.messageIds().length >= expected, 10_000, `${name}: ${expected} messages`).catch(() => {})
  await engine.whenIdle()
  return { key, engine, wire, relay, name, rejections }
}

/** How many connections or updates `relay` refused with a 44xx code so far. */
async function refusals(relay: RelayProcess): Promise<number> {
  const text = await (await fetch(`${relay.httpUrl}/metrics`)).text()
  return [...text.matchAll(/^kai_relay_rejections_total\{code="44\d\d"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0)
}

interface Relays {
  a: RelayProcess
  b: RelayProcess
  /** Stops the two relays hearing each other (their clients still reach them)... */
  partition(): void | Promise<void>
  /** ...and lets them again. */
  heal(): void | Promise<void>
}

/**
 * The attack and what a user relies on after it. Honest: the owner and a
 * writer on relay A, a writer and a reader on relay B, the writers writing
 * throughout. The cheat's seq 1 reaches everyone; its two seq 2 envelopes
 * go one to each relay while they are apart.
 */
async function equivocateAcross(relays: Relays, oneItemId: boolean): Promise<void> {
  const { a, b } = relays
  const owner = watched('owner on A', await ownerDevice(a.url))
  await owner.relay.whenAcknowledged()
  const writerA = watched('writer on A', await memberDevice(a.url, owner))
  const writerB = watched('writer on B', await memberDevice(b.url, owner))
  const readerB = watched('reader on B', await memberDevice(b.url, owner, 'reader'))
  const replicas = [owner, writerA, writerB, readerB]
  const writers = [owner, writerA, writerB]
  const cheat = await WebCryptoDeviceKey.generate()
  await owner.engine.setRole(cheat.publicKey, 'writer')
  await owner.engine.flush()
  await owner.relay.whenAcknowledged()
  await eventually(() => writerB.engine.roster.roleOf(cheat.publicKey) === 'writer', 10_000, 'the cheat\'s role on B')
  const room = owner.engine.sessionId
  const fresh: Replica[] = []
  const honest: string[] = []
  const writeRound = async (tag: string) => {
    for (const [i, w] of writers.entries()) {
      const id = `${tag}-${i}`
      w.engine.session.appendMessage({ id, role: 'user', content: `honest ${id}` })
      honest.push(id)
    }
    await sleep(20)
  }
  const refusedBefore = await Promise.all([refusals(a), refusals(b)])
  try {
    for (let i = 0; i < 3; i++) await writeRound(`before${i}`)
    const [toA, toB] = await Promise.all([cheatOn(a.url, room, cheat), cheatOn(b.url, room, cheat)])
    const stream = newStreamId()
    const state = new Y.Doc()
    const zero = await message(owner, cheat, stream, 'cheat-zero', 1, ZERO_HASH, state)
    const one = await message(owner, cheat, stream, 'cheat-one', 2, zero.hash, fork(state))
    const two = await message(owner, cheat, stream, 'cheat-two', 2, zero.hash, fork(state))
    const wireClient = 0x5eed0000 + Math.floor(Math.random() * 0xffff)
    toA.send(updateFrame(appendAs(toA.doc, wireClient - 1, zero)))
    await eventually(() => replicas.every((r) => r.engine.session.message('cheat-zero') !== undefined), 10_000, 'the cheat\'s seq 1 everywhere')

    await relays.partition()
    const holds = (r: Replica, env: Envelope) => r.wire.envelopes().some((e) => equalBytes(e, env.bytes))
    try {
      toA.send(updateFrame(appendAs(toA.doc, wireClient, one)))
      toB.send(updateFrame(appendAs(toB.doc, oneItemId ? wireClient : wireClient + 1, two)))
      await writeRound('apart')
      await eventually(() => holds(owner, one) && holds(writerB, two), 10_000, 'each relay to take the envelope it got first')
      await sleep(300)
    } finally {
      await relays.heal()
    }
    for (let i = 0; i < 3; i++) await writeRound(`after${i}`)
    // Honest streams flow between the relays again.
    const missing = (r: Replica) => honest.filter((id) => r.engine.session.message(id) === undefined)
    await eventually(() => replicas.every((r) => missing(r).length === 0), 20_000, 'every honest message at every replica').catch(() => {})
    const frozen = (r: Replica) => r.engine.ledger.frozenAt({ device: cheat.publicKey, stream })?.seq
    await eventually(() => replicas.every((r) => frozen(r) === 2), 5000, 'the stream frozen everywhere').catch(() => {})
    fresh.push(await freshReplica(a.url, owner, 'fresh on A', honest.length + 1), await freshReplica(b.url, owner, 'fresh on B', honest.length + 1))

    const both = [toBase64Url(one.hash), toBase64Url(two.hash)]
    const verdict = (r: Replica) => ({
      replica: r.name,
      missingHonest: missing(r),
      cheatZero: r.engine.session.message('cheat-zero') !== undefined,
      frozenAt: frozen(r),
      reportsBothHashes: both.every((h) => r.rejections.some((x) => x.code === 'equivocation' && x.message.includes(h))),
      // Its rival's verdict, and the copy of one a relay appended as its own (a replay).
      refusedOnlyTheCheat: r.rejections.every((x) => x.held || (x.device === deviceIdOf(cheat) && ['equivocation', 'replay', 'fork'].includes(x.code))),
    })
    for (const r of [...replicas, ...fresh]) {
      expect(verdict(r)).toEqual({ replica: r.name, missingHonest: [], cheatZero: true, frozenAt: 2, reportsBothHashes: true, refusedOnlyTheCheat: true })
      // At most one of the two: what a replica applied before the rival arrived stays (Yjs cannot take it back).
      expect(['cheat-one', 'cheat-two'].filter((id) => r.engine.session.message(id) !== undefined).length).toBeLessThanOrEqual(1)
    }
    // Every honest replica shows the same honest record; a replica that
    // got both at once (a fresh one, on either relay) applied neither.
    const honestRecord = (r: Replica) => r.engine.session.messageIds().filter((id) => !id.startsWith('cheat-one') && !id.startsWith('cheat-two'))
    for (const r of [...replicas, ...fresh]) expect(honestRecord(r)).toEqual(honestRecord(owner))
    for (const r of fresh) expect(r.engine.session.messageIds()).toEqual(fresh[0]!.engine.session.messageIds())
    expect(fresh[0]!.engine.session.message('cheat-one') ?? fresh[0]!.engine.session.message('cheat-two')).toBeUndefined()
    // Each relay serves both envelopes: whoever syncs through either judges the same.
    for (const url of [a.url, b.url]) {
      const served = (await wireOnRelay(url, room, owner.key)).envelopes()
      expect([one, two].map((env) => served.some((e) => equalBytes(e, env.bytes)))).toEqual([true, true])
    }
    // Nobody was refused: not the cheat (each relay took the one it got first), nor a peer link.
    expect(await Promise.all([refusals(a), refusals(b)])).toEqual(refusedBefore)
    toA.ws.close()
    toB.ws.close()
  } finally {
    for (const d of [...replicas, ...fresh]) closeDevice(d)
  }
}

describe('an equivocation through two nodes of one deployment (Redis and PostgreSQL)', () => {
  let postgres: PostgresServer
  let redis: RedisServer
  let proxy: TcpProxy
  let a: RelayProcess
  let b: RelayProcess
  beforeAll(async () => {
    ;[postgres, redis] = await Promise.all([startPostgres(), startRedis()])
    // A reaches Redis through a proxy the test can cut.
    proxy = await startTcpProxy(redis.port)
    ;[a, b] = await Promise.all([
      spawnRelay(['--redis-url', `redis://127.0.0.1:${proxy.port}`, '--postgres-url', postgres.url]),
      spawnRelay(['--redis-url', redis.url, '--postgres-url', postgres.url]),
    ])
  }, 60_000)
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
    a?.cleanup()
    b?.cleanup()
    await proxy?.close()
    await Promise.all([postgres?.stop(), redis?.stop()])
  })
  // Redis paused: each relay stores what it took (PostgreSQL) and tells its own clients; the other hears of it on resume.
  const relays = (): Relays => ({ a, b, partition: () => redis.pause(), heal: () => redis.resume() })
  // A cut from Redis: what each published meanwhile never reaches the other, which reads it from storage once A is back.
  const cut = (): Relays => ({ a, b, partition: () => proxy.cut(), heal: () => proxy.restore() })

  it('with one Yjs item id for the two: every replica on either node freezes the stream and reports both', async () => {
    await equivocateAcross(relays(), true)
  }, 90_000)

  it('with two Yjs item ids: every replica on either node freezes the stream and reports both', async () => {
    await equivocateAcross(relays(), false)
  }, 90_000)

  it('with one Yjs item id, while one node is cut from Redis (each reads the other\'s from storage): every replica freezes the stream and reports both', async () => {
    await equivocateAcross(cut(), true)
  }, 90_000)
})

describe('an equivocation through two federated relays', () => {
  let a: RelayProcess
  let b: RelayProcess
  let toA: TcpProxy
  let toB: TcpProxy
  beforeAll(async () => {
    // Each reaches the other through a proxy the test can cut.
    const [pa, pb] = await Promise.all([freePort(), freePort()])
    ;[toA, toB] = await Promise.all([startTcpProxy(pa), startTcpProxy(pb)])
    ;[a, b] = await Promise.all([
      spawnRelay(['--peer', `ws://127.0.0.1:${toB.port}`], { port: pa }),
      spawnRelay(['--peer', `ws://127.0.0.1:${toA.port}`], { port: pb }),
    ])
  }, 60_000)
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
    a?.cleanup()
    b?.cleanup()
    await Promise.all([toA?.close(), toB?.close()])
  })
  const relays = (): Relays => ({
    a,
    b,
    partition: () => {
      toA.cut()
      toB.cut()
    },
    heal: () => {
      toA.restore()
      toB.restore()
    },
  })

  it('with one Yjs item id for the two: every replica on either relay freezes the stream and reports both', async () => {
    await equivocateAcross(relays(), true)
  }, 90_000)

  it('with two Yjs item ids: every replica on either relay freezes the stream and reports both', async () => {
    await equivocateAcross(relays(), false)
  }, 90_000)
})
