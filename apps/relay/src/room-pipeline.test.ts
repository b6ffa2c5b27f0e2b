import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { WebCryptoDeviceKey, type SignatureVerifier, nodeVerifier } from '@kai-sync/crypto'
import { WireDoc, createSession, type SyncEngine } from '@kai-sync/engine'
import { LevelUpdateStore } from '@kai-sync/storage'
import { Room } from './room'
import { PromMetrics } from './metrics'
import { createLogger } from './log'
import { DEFAULT_LIMITS } from './limits'
import { MESSAGE_SYNC } from './protocol'
import type { Participant } from './participant'
import { testParticipant as participant } from './testing/participant'
import { craftUpdate, sealedBy } from './testing/forge'
import { updateFrame } from './testing/clients'

// A room checks its updates one at a time, against the state each will be
// merged into. Were the signature checks part of that line, a room could
// take one update per verification round trip, however idle the cores.
// They start on arrival instead; these tests hold every verification
// until released, to see what has been started, and what has not.

/** node:crypto's verifier, its answers held until `release()`. */
class HeldVerifier implements SignatureVerifier {
  readonly name = 'node'
  started = 0
  private readonly inner = nodeVerifier()
  private held: (() => void)[] = []

  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
    this.started++
    return new Promise((resolve) => this.held.push(() => resolve(this.inner.verify(publicKey, message, signature))))
  }

  release(): void {
    const held = this.held
    this.held = []
    for (const go of held) go()
  }
}

/** Envelopes a participant heard of through the room's broadcasts. */
function updatesIn(messages: Uint8Array[]): number {
  let n = 0
  for (const m of messages) {
    const d = decoding.createDecoder(m)
    if (decoding.readVarUint(d) === MESSAGE_SYNC && decoding.readVarUint(d) === 2) n++
  }
  return n
}

let dir: string
let store: LevelUpdateStore
let verifier: HeldVerifier
let owner: WebCryptoDeviceKey
let engine: SyncEngine
let room: Room

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kai-room-'))
  store = await LevelUpdateStore.open(dir)
  verifier = new HeldVerifier()
  owner = await WebCryptoDeviceKey.generate()
  engine = await createSession({ device: owner, mode: 'desktop', agentId: 'agent', userId: 'user', wire: new WireDoc(), batchWindowMs: 5, compactAfter: null })
  room = await Room.load(engine.sessionId, { store, verifier, metrics: new PromMetrics(), log: createLogger('error'), limits: DEFAULT_LIMITS, idle: () => {} })
})

afterEach(async () => {
  engine.destroy()
  await store.close()
  rmSync(dir, { recursive: true, force: true })
})

/** The owner's session as the room's first update, merged once its genesis checks are released. */
async function createRoom(sender: Participant): Promise<void> {
  room.join(sender)
  room.receive(sender, updateFrame(Y.encodeStateAsUpdate(engine.wire.doc)))
  while (room.wire.roster.size === 0) {
    verifier.release()
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** `n` updates, each appending one envelope after the one before it; the `forged`th signature fails. */
async function appends(n: number, forged = -1): Promise<Uint8Array[]> {
  const base = new Y.Doc()
  Y.applyUpdate(base, Y.encodeStateAsUpdate(room.wire.doc))
  const out: Uint8Array[] = []
  for (let i = 0; i < n; i++) {
    const envelope = await sealedBy(owner, engine.sessionId, engine.keys.current)
    // The last byte is signed (ciphertext or tag): flipping it fails the signature only.
    if (i === forged) envelope[envelope.length - 1]! ^= 1
    const update = craftUpdate(base, (wire) => wire.append([envelope], null))
    Y.applyUpdate(base, update)
    out.push(update)
  }
  return out
}

it('the signatures of a room\'s queued updates are all checked at once, and the updates merged in order', async () => {
  const writer = participant(owner.publicKey, 'owner')
  const listener = participant(null, 'listener')
  await createRoom(writer)
  room.join(listener)
  const updates = await appends(20)
  const base = room.wire.envelopes().length
  const before = verifier.started
  for (const u of updates) room.receive(writer, updateFrame(u))
  // Nothing has been answered yet, and every check is under way.
  await new Promise((r) => setTimeout(r, 20))
  expect(verifier.started - before).toBe(20)
  expect(room.wire.envelopes().length).toBe(base)
  verifier.release()
  const expected = base + 20
  for (let i = 0; i < 100 && room.wire.envelopes().length < expected; i++) await new Promise((r) => setTimeout(r, 10))
  expect(room.wire.envelopes().length).toBe(expected)
  await new Promise((r) => setTimeout(r, 50))
  expect(updatesIn(listener.received)).toBeGreaterThanOrEqual(20)
  expect(writer.closedWith).toBeNull()
})

it('a forged envelope among them is refused with 4403 and nothing after it is merged', async () => {
  const writer = participant(owner.publicKey, 'owner')
  await createRoom(writer)
  const updates = await appends(4, 2)
  const base = room.wire.envelopes().length
  for (const u of updates) room.receive(writer, updateFrame(u))
  for (let i = 0; i < 100 && writer.closedWith === null; i++) {
    verifier.release()
    await new Promise((r) => setTimeout(r, 10))
  }
  expect(writer.closedWith).toBe(4403)
  expect(writer.reason).toMatch(/signature does not verify/)
  expect(room.wire.envelopes().length).toBe(base + 2)
})

it('a reader\'s updates start no signature checks: it cannot make the relay verify what it will refuse', async () => {
  const writer = participant(owner.publicKey, 'owner')
  await createRoom(writer)
  const readerKey = await WebCryptoDeviceKey.generate()
  await engine.setRole(readerKey.publicKey, 'reader', { label: 'reader' })
  room.receive(writer, updateFrame(Y.encodeStateAsUpdate(engine.wire.doc, Y.encodeStateVector(room.wire.doc))))
  for (let i = 0; i < 100 && room.roster.member(readerKey.publicKey) === undefined; i++) {
    verifier.release()
    await new Promise((r) => setTimeout(r, 10))
  }
  const reader = participant(readerKey.publicKey, 'reader')
  room.join(reader)
  const before = verifier.started
  const envelope = await sealedBy(readerKey, engine.sessionId, engine.keys.current)
  for (let i = 0; i < 5; i++) room.receive(reader, updateFrame(craftUpdate(room.wire.doc, (wire) => wire.append([envelope], null))))
  for (let i = 0; i < 100 && reader.closedWith === null; i++) await new Promise((r) => setTimeout(r, 10))
  expect(reader.closedWith).toBe(4403)
  expect(verifier.started).toBe(before)
})
