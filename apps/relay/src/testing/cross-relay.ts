import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { SessionDoc } from '@kai-sync/model'
import { SessionKeyring, WebCryptoDeviceKey, deriveClientId, sealEnvelope, type DeviceKey, type Envelope } from '@kai-sync/crypto'
import { SyncEngine, WireDoc, deviceIdOf, type Rejection } from '@kai-sync/engine'
import { connectRelay } from '@kai-sync/providers'
import { freePort } from '@kai-sync/process-harness'
import { startPostgres, type PostgresServer } from '@kai-sync/storage/testing'
import { spawnRelay, type RelayProcess } from './relay-process'
import { startRedis, type RedisServer } from './redis-server'
import { startTcpProxy, type TcpProxy } from './tcp-proxy'
import { capability, eventually, memberDevice, ownerDevice, rawClient, type Device, type RawClient } from './clients'

// What the tests of a cheat working two relays apart share
// (equivocation-paths.test.ts, hijack-paths.test.ts): the two pairs of
// spawned relays and how each is partitioned and healed, the cheat's raw
// connections and crafted envelopes, and the replicas that judge them.

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export interface Replica extends Device {
  name: string
  rejections: Rejection[]
}

export function watched(name: string, d: Device): Replica {
  const rejections: Rejection[] = []
  d.engine.on('rejected', (r) => rejections.push(r))
  return { ...d, name, rejections }
}

/** A raw connection of `device` holding the room's wire doc as the relay served it, to send crafted updates on. */
export async function cheatOn(url: string, room: string, device: DeviceKey): Promise<RawClient & { doc: Y.Doc }> {
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
export function appendAs(base: Y.Doc, clientId: number, env: Envelope): Uint8Array {
  const copy = new Y.Doc()
  copy.clientID = clientId
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(base))
  const before = Y.encodeStateVector(copy)
  new WireDoc(copy).append([env.bytes], null)
  return Y.encodeStateAsUpdate(copy, before)
}

/** An envelope of `signer` on `stream` carrying message `id`, on top of `doc` (the stream's session state so far). */
export async function message(owner: Device, signer: DeviceKey, stream: Uint8Array, id: string, seq: number, prev: Uint8Array, doc: Y.Doc): Promise<Envelope> {
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

export function fork(doc: Y.Doc): Y.Doc {
  const copy = new Y.Doc()
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc))
  return copy
}

/** A new context that opens the session from `url` alone, once it has synced and judged what it got. */
export async function freshReplica(url: string, owner: Device, name: string, expected: number): Promise<Replica> {
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
export async function refusals(relay: RelayProcess): Promise<number> {
  const text = await (await fetch(`${relay.httpUrl}/metrics`)).text()
  return [...text.matchAll(/^kai_relay_rejections_total\{code="44\d\d"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0)
}

export interface Relays {
  a: RelayProcess
  b: RelayProcess
  /** Stops the two relays hearing each other (their clients still reach them)... */
  partition(): void | Promise<void>
  /** ...and lets them again. */
  heal(): void | Promise<void>
}

/** Two nodes of one deployment sharing Redis and PostgreSQL; A reaches Redis through a proxy the test can cut. */
export interface NodePair {
  a: RelayProcess
  b: RelayProcess
  /** Redis paused: each node stores what it took (PostgreSQL) and tells its own clients; the other hears of it on resume. */
  paused(): Relays
  /** A cut from Redis: what each published meanwhile never reaches the other, which reads it from storage once A is back. */
  cut(): Relays
  stop(): Promise<void>
}

export async function startNodePair(): Promise<NodePair> {
  let postgres: PostgresServer | undefined
  let redis: RedisServer | undefined
  let proxy: TcpProxy | undefined
  let a: RelayProcess | undefined
  let b: RelayProcess | undefined
  const stop = async () => {
    await Promise.all([a?.stop(), b?.stop()])
    a?.cleanup()
    b?.cleanup()
    await proxy?.close()
    await Promise.all([postgres?.stop(), redis?.stop()])
  }
  try {
    ;[postgres, redis] = await Promise.all([startPostgres(), startRedis()])
    proxy = await startTcpProxy(redis.port)
    ;[a, b] = await Promise.all([
      spawnRelay(['--redis-url', `redis://127.0.0.1:${proxy.port}`, '--postgres-url', postgres.url]),
      spawnRelay(['--redis-url', redis.url, '--postgres-url', postgres.url]),
    ])
  } catch (e) {
    await stop()
    throw e
  }
  const [ra, rb, r, p] = [a, b, redis, proxy]
  return {
    a: ra,
    b: rb,
    paused: () => ({ a: ra, b: rb, partition: () => r.pause(), heal: () => r.resume() }),
    cut: () => ({ a: ra, b: rb, partition: () => p.cut(), heal: () => p.restore() }),
    stop,
  }
}

/** Two federated relays, each reaching the other through a proxy the test can cut. */
export interface FederatedPair {
  relays(): Relays
  stop(): Promise<void>
}

export async function startFederatedPair(): Promise<FederatedPair> {
  const [pa, pb] = await Promise.all([freePort(), freePort()])
  const [toA, toB] = await Promise.all([startTcpProxy(pa), startTcpProxy(pb)])
  let a: RelayProcess | undefined
  let b: RelayProcess | undefined
  const stop = async () => {
    await Promise.all([a?.stop(), b?.stop()])
    a?.cleanup()
    b?.cleanup()
    await Promise.all([toA.close(), toB.close()])
  }
  try {
    ;[a, b] = await Promise.all([
      spawnRelay(['--peer', `ws://127.0.0.1:${toB.port}`], { port: pa }),
      spawnRelay(['--peer', `ws://127.0.0.1:${toA.port}`], { port: pb }),
    ])
  } catch (e) {
    await stop()
    throw e
  }
  const [ra, rb] = [a, b]
  return {
    relays: () => ({
      a: ra,
      b: rb,
      partition: () => {
        toA.cut()
        toB.cut()
      },
      heal: () => {
        toA.restore()
        toB.restore()
      },
    }),
    stop,
  }
}

/**
 * The honest side of a cheat's attack across two relays: the owner and a
 * writer on relay A, a writer and a reader on relay B, and the cheat made
 * a writer, its role known on B. `writeRound` has each honest writer append
 * one message (ids `${tag}-${i}`, kept in `honest`).
 */
export async function crossRelaySession(relays: Relays) {
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
  const honest: string[] = []
  const writeRound = async (tag: string) => {
    for (const [i, w] of writers.entries()) {
      const id = `${tag}-${i}`
      w.engine.session.appendMessage({ id, role: 'user', content: `honest ${id}` })
      honest.push(id)
    }
    await sleep(20)
  }
  return { owner, writerA, writerB, readerB, replicas, writers, cheat, room: owner.engine.sessionId, honest, writeRound }
}
