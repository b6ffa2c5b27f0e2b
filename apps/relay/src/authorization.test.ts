import * as Y from 'yjs'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { SessionKey, WebCryptoDeviceKey, createGenesis } from '@kai-sync/crypto'
import { decodeCapability, signCapability, capabilityToParam } from '@kai-sync/crypto/capability'
import { WireDoc } from '@kai-sync/engine'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { capability, closeDevice, eventually, memberDevice, ownerDevice, rawClient, updateFrame, type Device } from './testing/clients'
import { craftUpdate, sealedBy } from './testing/forge'
import { CloseCode } from './close-codes'

let relay: RelayProcess
let owner: Device
let room: string

beforeAll(async () => {
  relay = await spawnRelay(['--membership-grace-ms', '1000'])
  owner = await ownerDevice(relay.url)
  room = owner.engine.sessionId
  owner.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'before' })
  await owner.engine.flush()
  await owner.relay.whenAcknowledged()
})
afterAll(async () => {
  closeDevice(owner)
  await relay.stop()
  relay.cleanup()
})

async function closeCodeOf(cap: string | null, frame?: Uint8Array, targetRoom = room): Promise<number> {
  const client = await rawClient(relay.url, targetRoom, cap)
  if (frame) client.send(frame)
  return (await client.closed).code
}

/** What a fresh reader of the room sees: the refused content must not be there. */
async function relayState(): Promise<WireDoc> {
  const viewer = await rawClient(relay.url, room, await capability(owner.key, room))
  await eventually(() => viewer.received.length > 0, 5000, 'sync step 1')
  // Ask for everything: sync step 1 with an empty state vector.
  viewer.send(new Uint8Array([0, 0, 1, 0]))
  await eventually(() => viewer.received.some((m) => m[0] === 0 && m[1] === 1), 5000, 'sync step 2')
  const step2 = viewer.received.find((m) => m[0] === 0 && m[1] === 1)!
  const doc = new Y.Doc()
  const d = (await import('lib0/decoding')).createDecoder(step2)
  d.pos = 2
  Y.applyUpdate(doc, (await import('lib0/decoding')).readVarUint8Array(d))
  viewer.ws.close()
  return new WireDoc(doc)
}

describe('admission at the upgrade', () => {
  it('refuses a connection without a capability with 4401', async () => {
    expect(await closeCodeOf(null)).toBe(CloseCode.Unauthenticated)
  })

  it('refuses an expired capability with 4401', async () => {
    expect(await closeCodeOf(await capability(owner.key, room, { now: Date.now() - 120_000, ttlMs: 60_000 }))).toBe(CloseCode.Unauthenticated)
  })

  it('refuses a forged capability (another key\'s signature) with 4401', async () => {
    const forger = await WebCryptoDeviceKey.generate()
    const cap = await signCapability({ room }, forger)
    const bytes = cap.bytes.slice()
    bytes.set(owner.key.publicKey, 4 + 1 + room.length) // claim the owner's key
    expect(decodeCapability(bytes).device).toEqual(owner.key.publicKey)
    expect(await closeCodeOf(capabilityToParam(decodeCapability(bytes)))).toBe(CloseCode.Unauthenticated)
  })

  it('refuses a replayed capability with 4401', async () => {
    const cap = await capability(owner.key, room)
    const first = await rawClient(relay.url, room, cap)
    expect(first.ws.readyState).toBe(first.ws.OPEN)
    expect(await closeCodeOf(cap)).toBe(CloseCode.Unauthenticated)
    first.ws.close()
  })

  it('refuses a capability for another room with 4401', async () => {
    const other = await createGenesis(owner.key, 'other')
    expect(await closeCodeOf(await capability(owner.key, other.sessionId))).toBe(CloseCode.Unauthenticated)
  })

  it('refuses a device that is not in the roster with 4403, once the membership grace is over', async () => {
    const stranger = await WebCryptoDeviceKey.generate()
    const client = await rawClient(relay.url, room, await capability(stranger, room))
    client.send(new Uint8Array([0, 0, 1, 0])) // sync step 1: must stay unanswered
    expect((await client.closed).code).toBe(CloseCode.Forbidden)
    expect(client.received).toEqual([])
  })

  it('admits a device whose enrollment arrives while it waits, and then answers what it sent', async () => {
    const late = await WebCryptoDeviceKey.generate()
    const client = await rawClient(relay.url, room, await capability(late, room))
    client.send(new Uint8Array([0, 0, 1, 0]))
    await new Promise((r) => setTimeout(r, 100))
    expect(client.received).toEqual([])
    await owner.engine.setRole(late.publicKey, 'writer', { label: 'late' })
    // The relay's sync step 1, then the answer to ours (step 2).
    await eventually(() => client.received.some((m) => m[0] === 0 && m[1] === 1), 5000, 'sync step 2 after admission')
    expect(client.ws.readyState).toBe(client.ws.OPEN)
    client.ws.close()
  })

  it('refuses a squatter: a genesis of another id sent to an unused room, with 4403', async () => {
    const victimRoom = (await createGenesis(owner.key, 'not yet created')).sessionId
    const squatter = await WebCryptoDeviceKey.generate()
    const ownGenesis = await createGenesis(squatter, 'squatter')
    const update = craftUpdate(new Y.Doc(), (w) => w.addRosterEntries([ownGenesis.bytes], null))
    expect(await closeCodeOf(await capability(squatter, victimRoom), updateFrame(update), victimRoom)).toBe(CloseCode.Forbidden)
  })

  it('a room with no genesis that gets none in time closes the connection with 4401', async () => {
    const fast = await spawnRelay(['--pre-auth-timeout-ms', '300'])
    try {
      const key = await WebCryptoDeviceKey.generate()
      const unused = (await createGenesis(key, 'x')).sessionId
      const client = await rawClient(fast.url, unused, await capability(key, unused))
      expect((await client.closed).code).toBe(CloseCode.Unauthenticated)
    } finally {
      await fast.stop()
      fast.cleanup()
    }
  })
})

describe('updates the roster does not allow', () => {
  it('refuses a reader\'s envelope with 4403 and keeps it out of the room', async () => {
    const reader = await memberDevice(relay.url, owner, 'reader')
    const envelope = await sealedBy(reader.key, room, owner.engine.keys.current)
    const update = craftUpdate(owner.wire.doc, (w) => w.append([envelope], null))
    expect(await closeCodeOf(await capability(reader.key, room), updateFrame(update))).toBe(CloseCode.Forbidden)
    expect((await relayState()).envelopes().some((e) => Buffer.from(e).equals(Buffer.from(envelope)))).toBe(false)
    closeDevice(reader)
  })

  it('refuses an envelope signed by a non-member, even from a writer\'s connection, with 4403', async () => {
    const writer = await memberDevice(relay.url, owner, 'writer')
    const stranger = await WebCryptoDeviceKey.generate()
    const envelope = await sealedBy(stranger, room, await SessionKey.generate(0))
    const frame = updateFrame(craftUpdate(owner.wire.doc, (w) => w.append([envelope], null)))
    expect(await closeCodeOf(await capability(writer.key, room), frame)).toBe(CloseCode.Forbidden)
    closeDevice(writer)
  })

  it('refuses a tampered envelope with 4403', async () => {
    const envelope = await sealedBy(owner.key, room, owner.engine.keys.current)
    envelope[envelope.length - 70]! ^= 1 // a ciphertext byte
    const frame = updateFrame(craftUpdate(owner.wire.doc, (w) => w.append([envelope], null)))
    expect(await closeCodeOf(await capability(owner.key, room), frame)).toBe(CloseCode.Forbidden)
  })

  it('refuses a deletion from the log without a snapshot that covers it, with 4403', async () => {
    await owner.relay.whenAcknowledged()
    const frame = updateFrame(craftUpdate(owner.wire.doc, (w) => w.log.delete(0, 1)))
    expect(await closeCodeOf(await capability(owner.key, room), frame)).toBe(CloseCode.Forbidden)
    expect((await relayState()).envelopes().length).toBe(owner.wire.envelopes().length)
  })

  it('refuses deleting a roster entry with 4403', async () => {
    const key = owner.wire.roster.keys().next().value!
    const frame = updateFrame(craftUpdate(owner.wire.doc, (w) => w.roster.delete(key)))
    expect(await closeCodeOf(await capability(owner.key, room), frame)).toBe(CloseCode.Forbidden)
  })

  it('refuses content that is not a binary envelope or roster entry with 4400', async () => {
    const text = updateFrame(craftUpdate(owner.wire.doc, (w) => w.doc.getText('notes').insert(0, 'plaintext!')))
    expect(await closeCodeOf(await capability(owner.key, room), text)).toBe(CloseCode.BadRequest)
    const junk = updateFrame(craftUpdate(owner.wire.doc, (w) => w.append([new Uint8Array([1, 2, 3])], null)))
    expect(await closeCodeOf(await capability(owner.key, room), junk)).toBe(CloseCode.BadRequest)
    const any = updateFrame(craftUpdate(owner.wire.doc, (w) => w.log.insert(w.log.length, ['a string' as never])))
    expect(await closeCodeOf(await capability(owner.key, room), any)).toBe(CloseCode.BadRequest)
  })

  it('a compaction through the relay is accepted: the snapshot covers what it deletes', async () => {
    for (let i = 0; i < 5; i++) {
      owner.engine.session.appendMessage({ id: `c${i}`, role: 'user', content: `compact me ${i}` })
      await owner.engine.flush()
    }
    await owner.relay.whenAcknowledged()
    const deleted = await owner.engine.compact()
    expect(deleted).toBeGreaterThan(5)
    await owner.relay.whenAcknowledged()
    const state = await relayState()
    expect(state.envelopes().length).toBe(owner.wire.envelopes().length)
    expect(owner.relay.provider.wsconnected).toBe(true)
  })
})

describe('limits and metrics', () => {
  it('closes a frame over the size limit with 4413, and one over the rate with 4429', async () => {
    const small = await spawnRelay(['--max-message-bytes', '1000', '--max-messages-per-second', '5', '--message-burst', '5'])
    onTestFinished(async () => {
      await small.stop()
      small.cleanup()
    })
    const key = await WebCryptoDeviceKey.generate()
    const genesis = await createGenesis(key, 'limits')
    const big = await rawClient(small.url, genesis.sessionId, await capability(key, genesis.sessionId))
    big.send(new Uint8Array(2000))
    expect((await big.closed).code).toBe(CloseCode.TooLarge)
    const chatty = await rawClient(small.url, genesis.sessionId, await capability(key, genesis.sessionId))
    for (let i = 0; i < 20; i++) chatty.send(new Uint8Array([3])) // query awareness
    expect((await chatty.closed).code).toBe(CloseCode.TooMany)
    const metrics = await (await fetch(`${small.httpUrl}/metrics`)).text()
    expect(metrics).toMatch(/kai_relay_rejections_total\{code="4413"\} 1/)
    expect(metrics).toMatch(/kai_relay_rejections_total\{code="4429"\} 1/)
  })

  it('counts rejections by code, serves /healthz, and never logs a capability', async () => {
    const metrics = await (await fetch(`${relay.httpUrl}/metrics`)).text()
    expect(metrics).toMatch(/kai_relay_rejections_total\{code="4401"\} [1-9]/)
    expect(metrics).toMatch(/kai_relay_rejections_total\{code="4403"\} [1-9]/)
    expect(metrics).toMatch(/kai_relay_rejections_total\{code="4400"\} [1-9]/)
    const health = (await (await fetch(`${relay.httpUrl}/healthz`)).json()) as { status: string }
    expect(health.status).toBe('ok')
    const cap = await capability(owner.key, room)
    ;(await rawClient(relay.url, room, cap)).ws.close()
    await eventually(() => relay.logs.some((l) => l.includes('"connected"')), 5000, 'a connection log line')
    const logs = relay.logs.join('\n')
    expect(logs).not.toContain(cap)
    expect(logs).not.toContain(cap.slice(0, 40))
  })
})

describe('crafted updates', () => {
  it('an update of more items than the limit is refused with 4413 before it is decoded', async () => {
    const junk = Array.from({ length: 50_001 }, (_, i) => new Uint8Array([i & 0xff]))
    const update = craftUpdate(owner.wire.doc, (w) => w.log.insert(w.log.length, junk))
    expect(await closeCodeOf(await capability(owner.key, room), updateFrame(update))).toBe(CloseCode.TooLarge)
    expect((await fetch(`${relay.httpUrl}/healthz`)).status).toBe(200)
  })

  it('before its genesis, a new room accepts only small frames', async () => {
    const key = await WebCryptoDeviceKey.generate()
    const fresh = (await createGenesis(key, 'new')).sessionId
    const client = await rawClient(relay.url, fresh, await capability(key, fresh))
    client.send(new Uint8Array(100 * 1024))
    expect((await client.closed).code).toBe(CloseCode.TooLarge)
  })
})
