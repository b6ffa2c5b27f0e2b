import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { WebCryptoDeviceKey, nodeVerifier } from '@kai-sync/crypto'
import { WireDoc, createSession, type SyncEngine } from '@kai-sync/engine'
import { LevelUpdateStore } from '@kai-sync/storage'
import { Room, type RoomHost } from './room'
import { LogCopies } from './log-copies'
import { PromMetrics } from './metrics'
import { createLogger } from './log'
import { DEFAULT_LIMITS } from './limits'
import type { Participant } from './participant'
import { craftUpdate } from './testing/forge'
import { updateFrame } from './testing/clients'

// The room's index of the envelopes in its log is rebuilt when the room
// is loaded from storage: a copy sent after a restart is dropped too.

let dir: string
let store: LevelUpdateStore
let engine: SyncEngine
let host: RoomHost

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kai-copies-'))
  store = await LevelUpdateStore.open(dir)
  const owner = await WebCryptoDeviceKey.generate()
  engine = await createSession({ device: owner, mode: 'desktop', agentId: 'agent', userId: 'user', wire: new WireDoc(), batchWindowMs: 5, compactAfter: null })
  engine.session.appendMessage({ id: 'm1', role: 'user', content: 'x'.repeat(5000) })
  await engine.flush()
  host = { store, verifier: nodeVerifier(), metrics: new PromMetrics(), log: createLogger('error'), limits: DEFAULT_LIMITS, idle: () => {} }
})

afterEach(async () => {
  engine.destroy()
  await store.close()
  rmSync(dir, { recursive: true, force: true })
})

function participant(device: Uint8Array): Participant & { closedWith: number | null } {
  return {
    kind: 'client',
    device,
    wantsAck: false,
    label: 'owner',
    awarenessIds: new Set(),
    deferred: [],
    awaitingGenesis: false,
    awaitingMembership: false,
    waiting: [],
    closedWith: null,
    send() {},
    close(code) {
      this.closedWith = code
    },
  }
}

async function settle(check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200 && !(await check()); i++) await new Promise((r) => setTimeout(r, 10))
}

it('after the room is unloaded and loaded again, a copy of an envelope in its log is still dropped', async () => {
  const first = await Room.load(engine.sessionId, host)
  const sender = participant(engine.device.publicKey)
  first.join(sender)
  first.receive(sender, updateFrame(Y.encodeStateAsUpdate(engine.wire.doc)))
  const count = engine.wire.envelopes().length
  await settle(() => first.wire.envelopes().length === count)
  expect(first.wire.envelopes().length).toBe(count)
  await first.unload()

  const again = await Room.load(engine.sessionId, host)
  const size = again.wire.encodedSize()
  const envelope = engine.wire.envelopes().find((e) => e.length > 5000)!
  const copier = participant(engine.device.publicKey)
  again.join(copier)
  again.receive(copier, updateFrame(craftUpdate(again.wire.doc, (w) => w.append([envelope], null))))
  await settle(async () => (await host.metrics.get('kai_relay_copies_dropped_total')) > 0)
  expect(await host.metrics.get('kai_relay_copies_dropped_total')).toBe(1)
  expect(again.wire.envelopes().filter((e) => Buffer.from(e).equals(Buffer.from(envelope))).length).toBe(1)
  expect(again.wire.encodedSize() - size).toBeLessThan(100)
  expect(copier.closedWith).toBeNull()
  await again.unload()
})

it('follows the log: an envelope deleted from it (a compaction) leaves the index, a legacy second copy keeps it there', () => {
  const wire = new WireDoc()
  const copies = new LogCopies(wire)
  wire.doc.on('afterTransaction', (tr: Y.Transaction) => copies.track(tr, wire.insertedIn(tr).envelopes))
  const [a, b, c] = [1, 2, 3].map((n) => new Uint8Array(100).fill(n))
  wire.append([a!, b!, c!, a!], null) // a room stored before the check may hold `a` twice
  expect(copies.size).toBe(3)
  wire.log.delete(1, 1) // b
  expect(copies.size).toBe(2)
  wire.log.delete(0, 1) // one of the two a's
  expect(copies.size).toBe(2)
  wire.log.delete(wire.log.length - 1, 1) // the other
  expect(copies.size).toBe(1)
})

it('1,000 copies sent one by one add a tombstone each to what the room stores, not the envelope', async () => {
  const room = await Room.load(engine.sessionId, host)
  const sender = participant(engine.device.publicKey)
  room.join(sender)
  room.receive(sender, updateFrame(Y.encodeStateAsUpdate(engine.wire.doc)))
  await settle(() => room.wire.envelopes().length === engine.wire.envelopes().length)
  const storedBytes = async () => (await store.load(engine.sessionId)).reduce((n, s) => n + s.update.length, 0)
  await settle(async () => (await host.metrics.get('kai_relay_updates_stored_total')) > 0)
  const before = await storedBytes()
  const envelope = engine.wire.envelopes().find((e) => e.length > 5000)!
  const attacker = new WireDoc()
  Y.applyUpdate(attacker.doc, Y.encodeStateAsUpdate(room.wire.doc))
  attacker.doc.on('update', (u: Uint8Array) => room.receive(sender, updateFrame(u)))
  for (let i = 0; i < 1000; i++) attacker.append([envelope], null)
  for (let i = 0; i < 1000 && (await host.metrics.get('kai_relay_updates_stored_total')) < 1001; i++) await new Promise((r) => setTimeout(r, 10))
  expect(await host.metrics.get('kai_relay_copies_dropped_total')).toBe(1000)
  const grown = (await storedBytes()) - before
  // 1,000 copies of a 5 KB envelope would be 5 MB.
  expect(grown).toBeLessThan(64_000)
  expect(sender.closedWith).toBeNull()
  await room.unload()
})
