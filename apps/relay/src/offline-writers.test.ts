import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as Y from 'yjs'
import * as prng from 'lib0/prng'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { decodeEnvelope, equalBytes, nodeVerifier } from '@kai-sync/crypto'
import { SimNetwork, addReplica, createSimSession, recordOf, settle, type Replica, type SimSession } from '@kai-sync/engine/testing'
import { LevelUpdateStore } from '@kai-sync/storage'
import { Room } from './room'
import { PromMetrics } from './metrics'
import { createLogger } from './log'
import { DEFAULT_LIMITS } from './limits'
import { RoomGuard } from './testing/room-guard'

// What the relay-room fuzz (hostile-relay.fuzz.test.ts, seed 2) found: two
// honest writers the relay shut out. Real engines sync only through a real
// Room (the fuzz's RoomGuard: one participant per connection, members hear
// only what the room stored), on a network without faults.
//
// 1. A writer that wrote and compacted while its link was down sends the
//    envelopes the room never got as tombstones: the chain below its cover
//    of its own stream passes through them, so the room could not walk it.
// 2. A writer that sealed under the old epoch before it heard of a removal
//    was refused (4403 stale_epoch) on every connection before it could hear
//    of the new key, since its wire doc still carried the stale envelope.

let dir: string
let store: LevelUpdateStore
let room: Room
let guard: RoomGuard
let net: SimNetwork
let session: SimSession
/** Every envelope the room ever held, even if it was deleted later. */
const everStored = new Set<string>()
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
/** The session's clock, moved by the tests: epoch starts and createdAt never tie. */
let clock = 1_000_000
const now = () => clock

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kai-offline-writers-'))
  store = await LevelUpdateStore.open(dir)
  everStored.clear()
  net = new SimNetwork(prng.create(12), { reorder: 0, drop: 0, duplicate: 0 })
  session = await createSimSession(net, {
    compactAfter: null,
    now,
    hub: async (n, sessionId) => {
      room = await Room.load(sessionId, { store, verifier: nodeVerifier(), metrics: new PromMetrics(), log: createLogger('error'), limits: DEFAULT_LIMITS, idle: () => {} })
      room.wire.doc.on('afterTransaction', (tr: Y.Transaction) => {
        for (const e of room.wire.insertedIn(tr).envelopes) everStored.add(hex(e))
      })
      const attached = RoomGuard.attach(n, room)
      guard = attached.guard
      return attached.node
    },
  })
})

afterEach(async () => {
  for (const r of session.replicas) r.engine.destroy()
  await room.unload()
  await store.close()
  rmSync(dir, { recursive: true, force: true })
})

/** Delivers what is in flight on the links that are up (settle would bring every node back online). */
async function deliver(replicas: Replica[]): Promise<void> {
  for (let round = 0; round < 200; round++) {
    await Promise.all(replicas.map((r) => r.engine.whenIdle()))
    await net.whenIdle()
    if (net.pending === 0) return
    net.flush()
  }
  throw new Error('the network did not go quiet')
}

const refusalsOf = (r: Replica) => guard.refusals.filter((x) => x.device && equalBytes(x.device, r.device.publicKey)).map((x) => `${x.code} ${x.reason}`)

describe('writers that wrote while their link was down, through a Room', () => {
  it('a writer that compacted offline is let in: its snapshot deletes its own envelopes though the room never got the ones between', async () => {
    const writer = await addReplica(net, session, { compactAfter: null, now })
    await settle(net, session.replicas)
    writer.engine.session.appendMessage({ id: 'online', role: 'user', content: 'sent while connected' })
    await writer.engine.flush()
    await settle(net, session.replicas)
    const first = room.wire.envelopes().map(decodeEnvelope).find((e) => equalBytes(e.header.device, writer.device.publicKey) && e.header.kind === 'update')
    expect(first).toBeDefined()

    net.goOffline(writer.node)
    writer.engine.session.appendMessage({ id: 'offline', role: 'user', content: 'written while the link was down' })
    await writer.engine.flush()
    // The snapshot covers its stream up to the offline envelope, which the room never got.
    expect(await writer.engine.compact()).toBeGreaterThan(0)
    await settle(net, session.replicas)

    expect(refusalsOf(writer)).toEqual([])
    expect(session.owner.engine.session.message('offline')?.content).toBe('written while the link was down')
    expect(JSON.stringify(recordOf(session.owner))).toBe(JSON.stringify(recordOf(writer)))
    // Its first envelope is gone from the room, replaced by the snapshot.
    expect(room.wire.envelopes().some((b) => equalBytes(b, first!.bytes))).toBe(false)
  }, 30_000)

  it('a writer racing a removal is not shut out: the room drops its stale envelope (stores and relays none of it), the writer re-seals it under the new key, the removed device never gets it', async () => {
    const writer = await addReplica(net, session, { compactAfter: null, now })
    const leaver = await addReplica(net, session, { compactAfter: null, now })
    await settle(net, session.replicas)
    net.goOffline(writer.node)
    await session.owner.engine.removeDevice(leaver.device.publicKey)
    await session.owner.engine.flush()
    await deliver(session.replicas)
    clock += 10
    expect(room.epochs.staleness({ epoch: 0, createdAt: clock })).not.toBeNull()

    // Offline through the removal, it holds epoch 0 only and seals under it.
    expect(writer.engine.keys.has(1)).toBe(false)
    writer.engine.session.appendMessage({ id: 'racing', role: 'user', content: 'written before it heard of the removal' })
    await writer.engine.flush()
    const stale = writer.engine.wire.envelopes().map(decodeEnvelope).filter((e) => e.header.epoch === 0 && room.epochs.staleness(e.header) !== null)
    expect(stale.length).toBeGreaterThan(0)

    await settle(net, session.replicas)
    expect(refusalsOf(writer)).toEqual([])
    expect(session.owner.engine.session.message('racing')?.content).toBe('written before it heard of the removal')
    expect(JSON.stringify(recordOf(session.owner))).toBe(JSON.stringify(recordOf(writer)))
    // Never stored, not even for a moment, so never relayed; what the room holds of it is under epoch 1.
    for (const e of stale) expect(everStored.has(hex(e.bytes))).toBe(false)
    const mine = room.wire.envelopes().map(decodeEnvelope).filter((e) => equalBytes(e.header.device, writer.device.publicKey))
    expect(mine.filter((e) => room.epochs.staleness(e.header) !== null)).toEqual([])
    expect(leaver.engine.session.message('racing')).toBeUndefined()
  }, 30_000)
})
