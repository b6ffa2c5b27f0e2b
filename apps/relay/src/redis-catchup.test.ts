import { randomBytes } from 'node:crypto'
import * as Y from 'yjs'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PostgresUpdateStore } from '@kai-sync/storage'
import { startPostgres, type PostgresServer } from '@kai-sync/storage/testing'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { startRedis, type RedisServer } from './testing/redis-server'
import { startTcpProxy, type TcpProxy } from './testing/tcp-proxy'
import { capability, closeDevice, eventually, memberDevice, ownerDevice, rawClient, wireOnRelay, type Device } from './testing/clients'
import { CloseCode } from './close-codes'
import { SessionKeyring, WebCryptoDeviceKey } from '@kai-sync/crypto'
import { SyncEngine, WireDoc } from '@kai-sync/engine'
import { connectRelay } from '@kai-sync/providers'
import { messagesOnRelay } from './testing/session-view'

// Redis pub/sub is fire-and-forget: what is published while a process is
// not subscribed never reaches it. Two relays share Redis and PostgreSQL,
// relay A through a proxy the test can cut; an owner on A and a writer on B
// write to each room every 50 ms while Redis is killed and restarted, and
// then while A's connection to Redis is cut. Afterwards every acknowledged
// message must be at the other side's client and at fresh clients of both.

const ROOMS = 5
const EVERY_MS = 50

let postgres: PostgresServer
let redis: RedisServer
let proxy: TcpProxy
let a: RelayProcess
let b: RelayProcess

beforeAll(async () => {
  ;[postgres, redis] = await Promise.all([startPostgres(), startRedis()])
  proxy = await startTcpProxy(redis.port)
  const limits = ['--max-messages-per-second', '10000', '--message-burst', '10000']
  ;[a, b] = await Promise.all([
    spawnRelay(['--redis-url', `redis://127.0.0.1:${proxy.port}`, '--postgres-url', postgres.url, ...limits]),
    spawnRelay(['--redis-url', redis.url, '--postgres-url', postgres.url, ...limits]),
  ])
})
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()])
  a?.cleanup()
  b?.cleanup()
  await proxy?.close()
  await Promise.all([postgres?.stop(), redis?.stop()])
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface WritingRoom {
  owner: Device
  writer: Device
  written: { owner: string[]; writer: string[] }
}

/**
 * ROOMS rooms, each with its owner on relay A and a writer on relay B, both
 * writing a message every EVERY_MS until `stop` (`onWrite` after each).
 */
async function writeInRooms(prefix: string, onWrite: () => void = () => {}): Promise<{ rooms: WritingRoom[]; stop(): Promise<void> }> {
  const rooms: WritingRoom[] = []
  for (let r = 0; r < ROOMS; r++) {
    const owner = await ownerDevice(a.url)
    const writer = await memberDevice(b.url, owner)
    rooms.push({ owner, writer, written: { owner: [], writer: [] } })
  }
  let stopped = false
  const load = (async () => {
    for (let i = 0; !stopped; i++) {
      for (const [r, room] of rooms.entries()) {
        for (const side of ['owner', 'writer'] as const) {
          const id = `${prefix}${r}-${side}-${i}`
          room[side].engine.session.appendMessage({ id, role: 'user', content: `${side} message ${i}` })
          room.written[side].push(id)
          onWrite()
        }
      }
      await sleep(EVERY_MS)
    }
  })()
  return {
    rooms,
    stop: async () => {
      stopped = true
      await load
    },
  }
}

/**
 * Once every device has sealed and the relay acknowledged it all: how many
 * acknowledged writes the other side's clients miss (after ten seconds to
 * arrive), how many a fresh client of A and of B misses, and how many
 * envelopes the devices still hold back.
 */
async function lostWrites(rooms: WritingRoom[]): Promise<{ acknowledged: number; lost: { clients: number; freshOnA: number; freshOnB: number }; held: number }> {
  for (const { owner, writer } of rooms) {
    await owner.engine.whenIdle()
    await writer.engine.whenIdle()
    await owner.relay.whenAcknowledged()
    await writer.relay.whenAcknowledged()
  }
  const acknowledged = rooms.reduce((n, r) => n + r.written.owner.length + r.written.writer.length, 0)
  const missing = (have: readonly string[], want: readonly string[]) => {
    const set = new Set(have)
    return want.filter((id) => !set.has(id)).length
  }
  const lostAtClients = () => rooms.reduce((n, r) => n + missing(r.writer.engine.session.messageIds(), r.written.owner) + missing(r.owner.engine.session.messageIds(), r.written.writer), 0)
  await eventually(() => lostAtClients() === 0, 10_000, 'the other side\'s messages').catch(() => {})
  const lost = { clients: lostAtClients(), freshOnA: 0, freshOnB: 0 }
  for (const { owner, written } of rooms) {
    const all = [...written.owner, ...written.writer]
    const { sessionId } = owner.engine
    lost.freshOnA += missing(await messagesOnRelay(a.url, sessionId, owner.key, owner.engine.keys.current).catch(() => []), all)
    lost.freshOnB += missing(await messagesOnRelay(b.url, sessionId, owner.key, owner.engine.keys.current).catch(() => []), all)
  }
  const held = rooms.reduce((n, r) => n + r.owner.engine.status.held + r.writer.engine.status.held, 0)
  return { acknowledged, lost, held }
}

function closeRooms(rooms: WritingRoom[]): void {
  for (const { owner, writer } of rooms) {
    closeDevice(owner)
    closeDevice(writer)
  }
}

describe('two relays when Redis fails', () => {
  it('a Redis restart and a dropped Redis connection lose no update between processes', async () => {
    const { rooms, stop } = await writeInRooms('r')
    try {
      await sleep(1500)
      await redis.kill()
      await sleep(3000)
      await redis.restart()
      await sleep(2000)
      proxy.cut() // relay A loses Redis; B keeps it
      await sleep(3000)
      proxy.restore()
      await sleep(1500)
    } finally {
      await stop()
    }
    const { acknowledged, lost, held } = await lostWrites(rooms)
    const droppedOn = (r: RelayProcess) => r.logs.filter((l) => l.includes('dropped unresolved structs')).length
    const dropped = `${droppedOn(a)} on A, ${droppedOn(b)} on B`
    const reloads = `${await metric(a, 'kai_relay_storage_reloads_total')} on A, ${await metric(b, 'kai_relay_storage_reloads_total')} on B`
    console.log(`redis catch-up: cycles 2 (Redis restart, A's connection cut 3 s), rooms ${ROOMS}, writes acknowledged ${acknowledged}, lost at the other side's clients ${lost.clients}, at fresh clients of A ${lost.freshOnA}, of B ${lost.freshOnB}, held ${held}, "dropped unresolved structs" logged ${dropped}, room reloads ${reloads}`)
    closeRooms(rooms)
    expect(lost).toEqual({ clients: 0, freshOnA: 0, freshOnB: 0 })
    expect(held).toBe(0)
  }, 90_000)

  it('Redis paused for 5 s (SIGSTOP, then SIGCONT) loses no update between processes, and nothing hangs meanwhile', async () => {
    let writtenWhilePaused = 0
    let paused = false
    const { rooms, stop } = await writeInRooms('p', () => {
      if (paused) writtenWhilePaused++
    })
    const logsBefore = { a: a.logs.length, b: b.logs.length }
    let whilePaused: { healthMs: number[]; newConnection: Promise<{ outcome: string; afterMs: number }> }
    try {
      await sleep(1500)
      redis.pause()
      paused = true
      const pausedAt = Date.now()
      // A relay whose Redis answers nothing still serves HTTP at once, and a
      // device connecting now (its capability is claimed in Redis) is either
      // admitted once Redis answers or told to come back: never left hanging.
      const health = async (r: RelayProcess) => {
        const t = Date.now()
        expect((await fetch(`${r.httpUrl}/healthz`, { signal: AbortSignal.timeout(2000) })).status).toBe(200)
        return Date.now() - t
      }
      const newcomer = await ownerDevice(a.url)
      const raw = rawClient(b.url, newcomer.engine.sessionId, await capability(newcomer.key, newcomer.engine.sessionId))
      const answered = raw.then(async (c) => {
        const outcome = c.ws.readyState === c.ws.OPEN ? 'admitted' : `closed ${(await c.closed).code}`
        c.ws.close()
        return { outcome, afterMs: Date.now() - pausedAt }
      })
      const newConnection = Promise.race([answered, sleep(20_000).then(() => ({ outcome: 'left hanging', afterMs: Date.now() - pausedAt }))]).finally(() => closeDevice(newcomer))
      await sleep(1000)
      whilePaused = { healthMs: [await health(a), await health(b)], newConnection }
      await sleep(5000 - (Date.now() - pausedAt))
      redis.resume()
      paused = false
      await sleep(1500)
    } finally {
      redis.resume()
      paused = false
      await stop()
    }
    const { acknowledged, lost, held } = await lostWrites(rooms)
    const newLogs = (r: RelayProcess, from: number) => r.logs.slice(from)
    const count = (lines: string[], text: string) => lines.filter((l) => l.includes(text)).length
    const [logsA, logsB] = [newLogs(a, logsBefore.a), newLogs(b, logsBefore.b)]
    const connection = await whilePaused!.newConnection
    console.log(
      `redis pause: Redis SIGSTOPped 5 s, rooms ${ROOMS}, writes acknowledged ${acknowledged} (${writtenWhilePaused} while paused), ` +
        `lost at the other side's clients ${lost.clients}, at fresh clients of A ${lost.freshOnA}, of B ${lost.freshOnB}, held ${held}; ` +
        `while paused: /healthz answered in ${whilePaused!.healthMs.join(' and ')} ms, a new connection was ${connection.outcome} ${connection.afterMs} ms after the pause began; ` +
        `logged "redis error" ${count(logsA, 'redis error')} on A, ${count(logsB, 'redis error')} on B, "redis publish failed" ${count(logsA, 'redis publish failed')} / ${count(logsB, 'redis publish failed')}, ` +
        `"dropped unresolved structs" ${count(logsA, 'dropped unresolved structs')} / ${count(logsB, 'dropped unresolved structs')}`,
    )
    closeRooms(rooms)
    expect(writtenWhilePaused).toBeGreaterThan(0)
    expect(lost).toEqual({ clients: 0, freshOnA: 0, freshOnB: 0 })
    expect(held).toBe(0)
    // Admitted once Redis answered again, or sent back to reconnect: either way an answer, not a hang.
    expect(connection.outcome).toMatch(/^(admitted|closed 1013)$/)
  }, 90_000)

  it('what a relay wrote while cut from Redis reaches the other relay once it reconnects, though nothing follows it', async () => {
    const owner = await ownerDevice(a.url)
    const writer = await memberDevice(b.url, owner)
    try {
      proxy.cut()
      // Stored in PostgreSQL by A; its publishes fail, and no later update reveals the gap.
      for (let i = 0; i < 10; i++) owner.engine.session.appendMessage({ id: `cut-${i}`, role: 'user', content: `written while cut ${i}` })
      await owner.engine.flush()
      await owner.relay.whenAcknowledged()
      await sleep(1000)
      proxy.restore()
      await eventually(() => writer.engine.session.messageIds().filter((id) => id.startsWith('cut-')).length === 10, 15_000, 'the messages written while A was cut, at B\'s client')
      // And one written after: the subscription works again.
      writer.engine.session.appendMessage({ id: 'after', role: 'user', content: 'after the cut' })
      await eventually(() => owner.engine.session.message('after') !== undefined, 10_000, 'B\'s message at A\'s client')
    } finally {
      proxy.restore()
      closeDevice(owner)
      closeDevice(writer)
    }
  })

  it('a client update held for an update this relay missed is merged once a reload brings it, with nothing written after', async () => {
    const owner = await ownerDevice(a.url)
    const writer = await memberDevice(b.url, owner)
    try {
      proxy.cut()
      writer.engine.session.appendMessage({ id: 'from-b', role: 'user', content: 'written on B while A is cut' })
      await writer.engine.flush()
      await writer.relay.whenAcknowledged()
      // The owner hears of it another way (another context of the device,
      // over BroadcastChannel): relay A has not. Its next envelope comes
      // after B's in the log, so A holds it until it has B's.
      Y.applyUpdate(owner.wire.doc, Y.encodeStateAsUpdate(writer.wire.doc, Y.encodeStateVector(owner.wire.doc)), owner.relay.provider)
      await eventually(() => owner.engine.session.message('from-b') !== undefined, 5000, 'B\'s message at the owner')
      owner.engine.session.appendMessage({ id: 'from-a', role: 'user', content: 'written on A after it' })
      await owner.engine.flush()
      await sleep(500)
      proxy.restore()
      await eventually(() => writer.engine.session.message('from-a') !== undefined, 10_000, 'A\'s held message at B\'s client')
      await owner.relay.whenAcknowledged()
    } finally {
      proxy.restore()
      closeDevice(owner)
      closeDevice(writer)
    }
  })

  it('while Redis is down a new connection is told to come back later (1013, not a final 44xx), and syncs once Redis returns', async () => {
    const owner = await ownerDevice(b.url)
    let down = false
    try {
      owner.engine.session.appendMessage({ id: 'before', role: 'user', content: 'before Redis went down' })
      await owner.engine.flush()
      await owner.relay.whenAcknowledged()
      await redis.kill()
      down = true
      // Capabilities are claimed in Redis: the relay cannot admit anyone now.
      const raw = await rawClient(b.url, owner.engine.sessionId, await capability(owner.key, owner.engine.sessionId))
      expect((await raw.closed).code).toBe(CloseCode.TryAgainLater)
      // A fresh context that starts now gets the session once Redis is back.
      const fresh = messagesOnRelay(b.url, owner.engine.sessionId, owner.key, owner.engine.keys.current, 1)
      await sleep(1000)
      await redis.restart()
      down = false
      expect(await fresh).toEqual(['before'])
    } finally {
      if (down) await redis.restart()
      closeDevice(owner)
    }
  })

  it('a device that connects while its room unloads is not left in the unloaded room', async () => {
    // Relay C unloads a room as soon as its last client left. A device not
    // yet in the roster makes C ask Redis about handoffs after the room
    // loaded: meanwhile the idle room unloads.
    const c = await spawnRelay(['--redis-url', redis.url, '--postgres-url', postgres.url, '--idle-room-ms', '0', '--membership-grace-ms', '8000'])
    const owner = await ownerDevice(b.url)
    const JOINERS = 6
    const joiners: Device[] = []
    try {
      owner.engine.session.appendMessage({ id: 'hello', role: 'user', content: 'hello' })
      await owner.engine.flush()
      await owner.relay.whenAcknowledged()
      for (let i = 0; i < JOINERS; i++) {
        const key = await WebCryptoDeviceKey.generate()
        const wire = new WireDoc()
        const engine = await SyncEngine.open({ sessionId: owner.engine.sessionId, wire, device: key, keys: new SessionKeyring([owner.engine.keys.current]), mode: 'tab', batchWindowMs: 5, compactAfter: null })
        const relay = await connectRelay(wire, c.url, () => capability(key, owner.engine.sessionId), engine)
        joiners.push({ key, engine, wire, relay })
        await sleep(300)
        // Enrolled through B: the entry reaches C over Redis, and admits it there.
        await owner.engine.setRole(key.publicKey, 'writer', { label: `joiner ${i}` })
        await owner.relay.whenAcknowledged()
        await eventually(() => engine.role === 'writer' && engine.session.message('hello') !== undefined, 8000, `joiner ${i} to be admitted on C and synced`)
        // It leaves, so the room idles on C again for the next one.
        closeDevice(joiners.pop()!)
        await sleep(100)
      }
      const raced = c.logs.filter((l) => l.includes('"connection refused"') && l.includes('"code":1013')).length
      console.log(`joiners ${JOINERS}, sent back to reconnect because their room was unloading ${raced}`)
    } finally {
      for (const d of joiners) closeDevice(d)
      closeDevice(owner)
      await c.stop()
      c.cleanup()
    }
  })

  it('an update from Redis that depends on one this relay missed makes the room reload from storage instead of dropping it', async () => {
    const owner = await ownerDevice(b.url)
    const room = owner.engine.sessionId
    // Two updates of one Yjs client, the second building on the first: the
    // first stored (as a relay does before publishing) but never published.
    const doc = new Y.Doc()
    const before = Y.encodeStateVector(doc)
    doc.getMap('probe').set('first', 1)
    const first = Y.encodeStateAsUpdate(doc, before)
    const middle = Y.encodeStateVector(doc)
    doc.getMap('probe').set('second', 2)
    const second = Y.encodeStateAsUpdate(doc, middle)
    const store = await PostgresUpdateStore.open(postgres.url)
    const publisher = new Redis(redis.url)
    try {
      await store.append(room, first)
      // A message as another relay process publishes it: its id, kind 0 (update), the update.
      await publisher.publish(`kai-relay:${room}`, Buffer.concat([randomBytes(16), Buffer.from([0]), second]))
      await eventually(async () => {
        const probe = (await wireOnRelay(b.url, room, owner.key)).doc.getMap('probe')
        return probe.get('first') === 1 && probe.get('second') === 2
      }, 10_000, 'both updates in the room as relay B serves it')
    } finally {
      publisher.disconnect()
      await store.close()
      closeDevice(owner)
    }
  })
})

async function metric(relay: RelayProcess, name: string): Promise<number> {
  const text = await (await fetch(`${relay.httpUrl}/metrics`)).text()
  return Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? 0)
}
