import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SessionKeyring, WebCryptoDeviceKey, ZERO_HASH, decodeEnvelope, equalBytes, newStreamId, randomBytes, sealEnvelope, type DeviceKey, type Envelope, type EnvelopeHeader, nodeVerifier } from '@kai-sync/crypto'
import { SyncEngine, WireDoc, createSession, transportOrigin } from '@kai-sync/engine'
import { LevelUpdateStore } from '@kai-sync/storage'
import { Room } from './room'
import { PromMetrics } from './metrics'
import { createLogger } from './log'
import { DEFAULT_LIMITS } from './limits'
import { CloseCode } from './close-codes'
import { testParticipant as participant, type TestParticipant } from './testing/participant'
import { craftUpdate } from './testing/forge'
import { updateFrame } from './testing/clients'

// Issue 12, items 1 and 2, at the relay: a writer who signs whatever it
// likes sends what a cheating client would, straight into a room.

let dir: string
const opened: Array<{ room: Room; store: LevelUpdateStore }> = []
let engine: SyncEngine
let a: DeviceKey
let b: DeviceKey

/** A room (with a store of its own) holding a session with writers `a` (the cheat) and `b` (honest). */
async function openRoom(): Promise<Room> {
  const store = await LevelUpdateStore.open(mkdtempSync(join(dir, 'room-')))
  const room = await Room.load(engine.sessionId, { store, verifier: nodeVerifier(), metrics: new PromMetrics(), log: createLogger('error'), limits: DEFAULT_LIMITS, idle: () => {} })
  const owner = participant(engine.device.publicKey, 'owner')
  room.join(owner)
  room.receive(owner, updateFrame(Y.encodeStateAsUpdate(engine.wire.doc)))
  opened.push({ room, store })
  await until(() => room.roster.member(b.publicKey) !== undefined)
  return room
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kai-streams-'))
  const owner = await WebCryptoDeviceKey.generate()
  engine = await createSession({ device: owner, mode: 'desktop', agentId: 'agent', userId: 'user', wire: new WireDoc(), compactAfter: null })
  a = await WebCryptoDeviceKey.generate()
  b = await WebCryptoDeviceKey.generate()
  await engine.setRole(a.publicKey, 'writer')
  await engine.setRole(b.publicKey, 'writer')
  await engine.flush()
})

afterEach(async () => {
  engine.destroy()
  for (const { room, store } of opened.splice(0)) {
    await room.unload()
    await store.close()
  }
  rmSync(dir, { recursive: true, force: true })
})

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10))
  expect(check()).toBe(true)
}

async function sealed(signer: DeviceKey, header: Partial<Omit<EnvelopeHeader, 'device' | 'epoch'>>): Promise<Envelope> {
  return sealEnvelope({
    header: { kind: 'update', sessionId: engine.sessionId, stream: newStreamId(), seq: 1, prev: ZERO_HASH, createdAt: 1, clientIds: [], covers: [], ...header },
    plaintext: new Uint8Array([0, 0]),
    key: engine.keys.current,
    signer,
  })
}

/** Sends `change` from `p` as one update; resolves once the room merged it or closed `p`. */
async function send(room: Room, p: TestParticipant, change: (wire: WireDoc) => void): Promise<number | null> {
  if (!room.participants.has(p)) room.join(p)
  const before = Y.encodeStateVector(room.wire.doc)
  const update = craftUpdate(room.wire.doc, change)
  room.receive(p, updateFrame(update))
  await until(() => p.closedWith !== null || !equalVectors(before, Y.encodeStateVector(room.wire.doc)))
  return p.closedWith
}

function equalVectors(x: Uint8Array, y: Uint8Array): boolean {
  return Buffer.from(x).equals(Buffer.from(y))
}

const holds = (room: Room, env: Envelope) => room.wire.envelopes().some((e) => Buffer.from(e).equals(Buffer.from(env.bytes)))

describe('a stream is its device\'s, at the relay', () => {
  it('refuses, with 4403, an envelope another device signs on an honest stream id, and keeps the honest stream open', async () => {
    const room = await openRoom()
    const sb = newStreamId()
    const b1 = await sealed(b, { stream: sb })
    expect(await send(room, participant(b.publicKey, 'b'), (w) => w.append([b1.bytes], null))).toBeNull()
    const hijack = await sealed(a, { stream: sb, seq: 2, prev: b1.hash })
    const cheat = participant(a.publicKey, 'a')
    expect(await send(room, cheat, (w) => w.append([hijack.bytes], null))).toBe(CloseCode.Forbidden)
    expect(cheat.reason).toMatch(/another device opened/)
    expect(holds(room, hijack)).toBe(false)
    const b2 = await sealed(b, { stream: sb, seq: 2, prev: b1.hash })
    expect(await send(room, participant(b.publicKey, 'b again'), (w) => w.append([b2.bytes], null))).toBeNull()
    expect(holds(room, b2)).toBe(true)
  })

  it('takes from a peer relay an envelope on a stream another device opened (the peer took it first), and knows the stream as its opener\'s after, in either order', async () => {
    const sb = newStreamId()
    const b1 = await sealed(b, { stream: sb })
    const hijack = await sealed(a, { stream: sb, seq: 2, prev: b1.hash })
    const b2 = await sealed(b, { stream: sb, seq: 2, prev: b1.hash })
    const again = await sealed(a, { stream: sb, seq: 3, prev: b2.hash })
    // This relay's client gave it b's first envelope and the peer the hijack, or the cheat gave it the hijack first and the peer b's.
    for (const [mine, signer, theirs] of [[b1, b, hijack], [hijack, a, b1]] as const) {
      const room = await openRoom()
      expect(await send(room, participant(signer.publicKey, 'client'), (w) => w.append([mine.bytes], null))).toBeNull()
      const peer = participant(null, 'peer relay')
      expect(await send(room, peer, (w) => w.append([theirs.bytes], null))).toBeNull()
      expect([holds(room, b1), holds(room, hijack)]).toEqual([true, true])
      // Whichever came first: b's next envelope from a client is taken, a client's hijack refused.
      expect(await send(room, participant(b.publicKey, 'b'), (w) => w.append([b2.bytes], null))).toBeNull()
      const cheat = participant(a.publicKey, 'a')
      expect(await send(room, cheat, (w) => w.append([again.bytes], null))).toBe(CloseCode.Forbidden)
      expect(cheat.reason).toMatch(/another device opened/)
      expect([holds(room, b2), holds(room, again), peer.closedWith]).toEqual([true, false, null])
    }
  })

  it('takes the first of two envelopes a device signed at one position, and refuses the other with 4403, in either order', async () => {
    const sb = newStreamId()
    const one = await sealed(b, { stream: sb, createdAt: 1 })
    const two = await sealed(b, { stream: sb, createdAt: 2 })
    for (const [first, second] of [[one, two], [two, one]] as const) {
      const room = await openRoom()
      expect(await send(room, participant(b.publicKey, 'b'), (w) => w.append([first.bytes], null))).toBeNull()
      const again = participant(b.publicKey, 'b again')
      expect(await send(room, again, (w) => w.append([second.bytes], null))).toBe(CloseCode.Forbidden)
      expect(again.reason).toMatch(/equivocation/)
      expect(holds(room, first)).toBe(true)
      expect(holds(room, second)).toBe(false)
      // Both in one update: refused whole.
      const fresh = await openRoom()
      const both = participant(b.publicKey, 'both')
      expect(await send(fresh, both, (w) => w.append([first.bytes, second.bytes], null))).toBe(CloseCode.Forbidden)
    }
  })
})

describe('a snapshot deletes only what its covers chain down to, at the relay', () => {
  async function withHonestStream(room: Room): Promise<{ sb: Uint8Array; b1: Envelope; b2: Envelope }> {
    const sb = newStreamId()
    const b1 = await sealed(b, { stream: sb })
    const b2 = await sealed(b, { stream: sb, seq: 2, prev: b1.hash })
    expect(await send(room, participant(b.publicKey, 'b'), (w) => w.append([b1.bytes, b2.bytes], null))).toBeNull()
    return { sb, b1, b2 }
  }

  /** A's update (or `signer`'s): a snapshot with `covers`, deleting B's envelopes from the log. */
  async function compactAs(room: Room, covers: EnvelopeHeader['covers'], victims: Envelope[], signer: DeviceKey = a): Promise<TestParticipant & { result: number | null; snapshot: Envelope }> {
    const snapshot = await sealed(signer, { kind: 'snapshot', seq: 0, covers })
    const p = Object.assign(participant(signer.publicKey, 'a'), { result: null as number | null, snapshot })
    p.result = await send(room, p, (w) => {
      const all = w.envelopes()
      const at = victims.map((v) => all.findIndex((e) => Buffer.from(e).equals(Buffer.from(v.bytes))))
      for (const i of at.sort((x, y) => y - x)) w.log.delete(i, 1)
      w.append([snapshot.bytes], null)
    })
    return p
  }

  it('refuses, with 4403, an empty snapshot claiming an honest stream up to seq 1,000,000 that deletes its envelopes', async () => {
    const room = await openRoom()
    const { sb, b1, b2 } = await withHonestStream(room)
    const p = await compactAs(room, [{ device: b.publicKey, stream: sb, seq: 1_000_000, hash: randomBytes(32) }], [b1, b2])
    expect(p.result).toBe(CloseCode.Forbidden)
    expect(p.reason).toMatch(/chain down to it/)
    expect(holds(room, b1) && holds(room, b2)).toBe(true)
  })

  it('refuses a cover whose hash is not the envelope at its seq, and one naming the stream under another device', async () => {
    const room = await openRoom()
    const { sb, b1, b2 } = await withHonestStream(room)
    expect((await compactAs(room, [{ device: b.publicKey, stream: sb, seq: 2, hash: b1.hash }], [b1])).result).toBe(CloseCode.Forbidden)
    expect((await compactAs(room, [{ device: a.publicKey, stream: sb, seq: 2, hash: b2.hash }], [b1])).result).toBe(CloseCode.Forbidden)
    expect(holds(room, b1) && holds(room, b2)).toBe(true)
  })

  it('accepts a snapshot whose cover is the stream\'s real tip, deleting the chain below it (and only that)', async () => {
    const room = await openRoom()
    const { sb, b1, b2 } = await withHonestStream(room)
    const p = await compactAs(room, [{ device: b.publicKey, stream: sb, seq: 2, hash: b2.hash }], [b1, b2])
    expect(p.result).toBeNull()
    expect(holds(room, b1) || holds(room, b2)).toBe(false)
  })

  it('accepts a snapshot replacing an older one whose chain another snapshot compacted first, and still refuses an over-claim deleting an envelope it does not reach', async () => {
    // Found by the relay-room fuzz (seed 24): concurrent compactions. A's
    // first snapshot holds b1; the owner's holds b2 and deletes it; A's next
    // covers b2 too and replaces its first, though the room, holding neither
    // b2 nor b1 now, cannot walk from b2 down to the first one's cover.
    const room = await openRoom()
    const { sb, b1, b2 } = await withHonestStream(room)
    const older = await compactAs(room, [{ device: b.publicKey, stream: sb, seq: 1, hash: b1.hash }], [b1])
    expect(older.result).toBeNull()
    expect((await compactAs(room, [{ device: b.publicKey, stream: sb, seq: 2, hash: b2.hash }], [b2], engine.device)).result).toBeNull()
    expect(holds(room, b1) || holds(room, b2)).toBe(false)
    const newer = await compactAs(room, [{ device: b.publicKey, stream: sb, seq: 2, hash: b2.hash }], [older.snapshot])
    expect(newer.reason).toBe('')
    expect(newer.result).toBeNull()
    expect(holds(room, older.snapshot)).toBe(false)
    // An update envelope needs the walk still: a claim beyond b's tip deletes none of them.
    const b3 = await sealed(b, { stream: sb, seq: 3, prev: b2.hash })
    expect(await send(room, participant(b.publicKey, 'b'), (w) => w.append([b3.bytes], null))).toBeNull()
    const overclaim = await compactAs(room, [{ device: b.publicKey, stream: sb, seq: 5, hash: randomBytes(32) }], [b3])
    expect(overclaim.result).toBe(CloseCode.Forbidden)
    expect(holds(room, b3)).toBe(true)
  })

  it('accepts the compaction of an honest writer that applied an over-claiming snapshot (its answer to it): it deletes the chain it holds, and the false snapshot', async () => {
    const room = await openRoom()
    const wire = new WireDoc()
    Y.applyUpdate(wire.doc, Y.encodeStateAsUpdate(room.wire.doc))
    const honest = await SyncEngine.open({ sessionId: engine.sessionId, wire, device: b, keys: new SessionKeyring([engine.keys.current]), mode: 'tab', compactAfter: null })
    const bp = participant(b.publicKey, 'b')
    const upload = async () => {
      const diff = Y.encodeStateAsUpdate(wire.doc, Y.encodeStateVector(room.wire.doc))
      expect(await send(room, bp, (w) => Y.applyUpdate(w.doc, diff))).toBeNull()
    }
    try {
      for (const id of ['m1', 'm2']) {
        honest.session.appendMessage({ id, role: 'user', content: id, timestamp: 1 })
        await honest.flush()
      }
      await upload()
      const stream = honest.position.stream
      const censor = await sealed(a, { kind: 'snapshot', seq: 0, covers: [{ device: b.publicKey, stream, seq: 1_000_000, hash: randomBytes(32) }] })
      expect(await send(room, participant(a.publicKey, 'a'), (w) => w.append([censor.bytes], null))).toBeNull()
      wire.doc.transact(() => Y.applyUpdate(wire.doc, Y.encodeStateAsUpdate(room.wire.doc, Y.encodeStateVector(wire.doc))), transportOrigin('relay'))
      await honest.whenIdle()
      // The writer holds the content the snapshot claims: it reports it and compacts at once (over_claim).
      expect(honest.status.refusedBy).toEqual({ over_claim: 1 })
      const log = wire.envelopes().map(decodeEnvelope)
      expect(log.filter((e) => e.header.kind === 'update' && equalBytes(e.header.device, b.publicKey))).toEqual([])
      expect(log.some((e) => equalBytes(e.bytes, censor.bytes))).toBe(false)
      await upload()
      expect(holds(room, censor)).toBe(false)
      expect(room.wire.envelopes()).toEqual(wire.envelopes())
    } finally {
      honest.destroy()
    }
  })
})
