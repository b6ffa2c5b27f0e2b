import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { WebCryptoDeviceKey, createGenesis, decodeEnvelope } from '@kai-sync/crypto'
import { WireDoc } from '@kai-sync/engine'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { capability, closeDevice, eventually, memberDevice, ownerDevice, rawClient, updateFrame, wireOnRelay, type Device, type RawClient } from './testing/clients'
import { craftUpdate, sealedBy } from './testing/forge'
import { CloseCode } from './close-codes'

// Issue 12, item 4: a member who cheats at the relay. A reader's
// connection must write nothing (not a tombstone, not a copy of someone
// else's envelope, not a deletion), a copy of an envelope already in the
// log must not be stored or relayed again whoever sends it, the rate limit
// must count bytes, and no one may overwrite another client's presence.

let relay: RelayProcess
let owner: Device
let reader: Device
let room: string

beforeAll(async () => {
  relay = await spawnRelay()
  owner = await ownerDevice(relay.url)
  room = owner.engine.sessionId
  owner.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'before' })
  await owner.engine.flush()
  await owner.relay.whenAcknowledged()
  reader = await memberDevice(relay.url, owner, 'reader')
})
afterAll(async () => {
  closeDevice(reader)
  closeDevice(owner)
  await relay.stop()
  relay.cleanup()
})

/** The room as a fresh connection downloads it, as bytes to compare. */
async function roomBytes(r = room, device = owner.key): Promise<Buffer> {
  return Buffer.from(Y.encodeStateAsUpdate((await wireOnRelay(relay.url, r, device)).doc))
}

/** The close code, or 'open' if the relay kept the connection for `ms`. */
async function closeCode(client: RawClient, ms = 3000): Promise<number | 'open'> {
  const code = await Promise.race([client.closed.then((c) => c.code), new Promise<'open'>((r) => setTimeout(() => r('open'), ms))])
  if (code === 'open') client.ws.close()
  return code
}

/** Sends `frames` from a fresh connection of `device`; resolves to its close code (or 'open'). */
async function sendAs(device: WebCryptoDeviceKey, frames: Uint8Array[], r = room): Promise<number | 'open'> {
  const client = await rawClient(relay.url, r, await capability(device, r))
  for (const f of frames) client.send(f)
  return closeCode(client)
}

/** A y-websocket awareness message with one (client id, clock, state) entry. */
function awarenessFrame(clientId: number, clock: number, state: unknown): Uint8Array {
  const inner = encoding.createEncoder()
  encoding.writeVarUint(inner, 1)
  encoding.writeVarUint(inner, clientId)
  encoding.writeVarUint(inner, clock)
  encoding.writeVarString(inner, JSON.stringify(state))
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 1)
  encoding.writeVarUint8Array(e, encoding.toUint8Array(inner))
  return encoding.toUint8Array(e)
}

/** The newest state per client id in the awareness messages a client received. */
function presenceIn(messages: Uint8Array[]): Map<number, unknown> {
  const out = new Map<number, { clock: number; state: unknown }>()
  for (const m of messages) {
    const d = decoding.createDecoder(m)
    if (decoding.readVarUint(d) !== 1) continue
    const u = decoding.createDecoder(decoding.readVarUint8Array(d))
    for (let n = decoding.readVarUint(u); n > 0; n--) {
      const id = decoding.readVarUint(u)
      const clock = decoding.readVarUint(u)
      const state = JSON.parse(decoding.readVarString(u)) as unknown
      if ((out.get(id)?.clock ?? -1) <= clock) out.set(id, { clock, state })
    }
  }
  return new Map([...out].map(([id, v]) => [id, v.state]))
}

describe('a reader\'s connection writes nothing', () => {
  it('refuses a reader\'s tombstone (a content-free log item) with 4403, and the room is unchanged', async () => {
    const before = await roomBytes()
    // Inserted and deleted in one transaction: Yjs encodes a ContentDeleted item.
    const update = craftUpdate(reader.wire.doc, (w) =>
      w.doc.transact(() => {
        w.log.insert(w.log.length, [new Uint8Array(1000)])
        w.log.delete(w.log.length - 1, 1)
      }),
    )
    expect(Y.decodeUpdate(update).structs.some((s) => s instanceof Y.Item && s.content instanceof Y.ContentDeleted)).toBe(true)
    expect(await sendAs(reader.key, [updateFrame(update)])).toBe(CloseCode.Forbidden)
    expect((await roomBytes()).equals(before)).toBe(true)
  })

  it('refuses a reader\'s re-insert of a valid envelope (the owner\'s) with 4403, and the room is unchanged', async () => {
    const before = await roomBytes()
    const envelope = owner.wire.envelopes()[0]!
    const update = craftUpdate(reader.wire.doc, (w) => w.append([envelope], null))
    expect(await sendAs(reader.key, [updateFrame(update)])).toBe(CloseCode.Forbidden)
    expect((await roomBytes()).equals(before)).toBe(true)
  })

  it('refuses a reader\'s deletion with 4403 even where a writer\'s would pass (a snapshot in the log covers it), and the room is unchanged', async () => {
    // A room of its own: its owner compacts offline and uploads only the
    // snapshot, so the log holds live envelopes a snapshot covers.
    const o = await ownerDevice(relay.url)
    const r2 = await memberDevice(relay.url, o, 'reader')
    onTestFinished(() => {
      closeDevice(r2)
      closeDevice(o)
    })
    const id = o.engine.sessionId
    for (let i = 0; i < 3; i++) {
      o.engine.session.appendMessage({ id: `d${i}`, role: 'user', content: `covered ${i}` })
      await o.engine.flush()
    }
    await o.relay.whenAcknowledged()
    o.relay.destroy()
    expect(await o.engine.compact()).toBeGreaterThan(0)
    const snapshot = o.wire.envelopes().at(-1)!
    const base = (await wireOnRelay(relay.url, id, o.key)).doc
    expect(await sendAs(o.key, [updateFrame(craftUpdate(base, (w) => w.append([snapshot], null)))], id)).toBe('open')
    const before = await roomBytes(id, o.key)
    const withSnapshot = (await wireOnRelay(relay.url, id, o.key)).doc
    const deletion = updateFrame(craftUpdate(withSnapshot, (w) => w.log.delete(0, 1)))
    expect(await sendAs(r2.key, [deletion], id)).toBe(CloseCode.Forbidden)
    expect((await roomBytes(id, o.key)).equals(before)).toBe(true)
  })

  it('a reader may still add a roster entry about itself: it steps out of the session', async () => {
    const leaving = await memberDevice(relay.url, owner, 'reader')
    onTestFinished(() => closeDevice(leaving))
    await leaving.engine.setRole(leaving.key.publicKey, 'removed')
    await eventually(() => owner.engine.roster.roleOf(leaving.key.publicKey) === 'removed', 5000, 'the owner to hear of the step-out')
  })

  it('a demoted device uploads nothing through its own connection, not even an envelope its `until` allows; a writer\'s connection may relay that one', async () => {
    const demoted = await memberDevice(relay.url, owner, 'writer')
    const writer = await memberDevice(relay.url, owner, 'writer')
    onTestFinished(() => {
      closeDevice(demoted)
      closeDevice(writer)
    })
    const envelope = await sealedBy(demoted.key, room, owner.engine.keys.current)
    const { stream } = decodeEnvelope(envelope).header
    await owner.engine.setRole(demoted.key.publicKey, 'reader', { until: [{ stream, seq: 1 }] })
    await owner.relay.whenAcknowledged()
    const base = (await wireOnRelay(relay.url, room, owner.key)).doc
    const frame = updateFrame(craftUpdate(base, (w) => w.append([envelope], null)))
    expect(await sendAs(demoted.key, [frame])).toBe(CloseCode.Forbidden)
    expect(await sendAs(writer.key, [frame])).toBe('open')
    expect((await wireOnRelay(relay.url, room, owner.key)).envelopes().some((e) => Buffer.from(e).equals(Buffer.from(envelope)))).toBe(true)
  })

  it('a reader still syncs: its sync step 2 after a compaction repeats only what the relay has, and is not refused', async () => {
    for (let i = 0; i < 3; i++) {
      owner.engine.session.appendMessage({ id: `s${i}`, role: 'user', content: `to compact ${i}` })
      await owner.engine.flush()
    }
    await owner.relay.whenAcknowledged()
    expect(await owner.engine.compact()).toBeGreaterThan(0)
    await owner.relay.whenAcknowledged()
    await eventually(() => reader.wire.envelopes().length === owner.wire.envelopes().length, 5000, 'the reader to hear of the compaction')
    const closes: number[] = []
    reader.relay.provider.on('connection-close', (e) => closes.push(e?.code ?? 0))
    reader.relay.provider.disconnect()
    reader.relay.provider.connect()
    await reader.relay.whenSynced()
    await new Promise((r) => setTimeout(r, 500))
    expect(closes.filter((c) => c >= 4000)).toEqual([])
    expect(reader.relay.provider.wsconnected).toBe(true)
  })
})

describe('copies of an envelope already in the log', () => {
  it('a writer re-sending one envelope 1,000 times: the room and what the others receive do not grow with the copies', async () => {
    const writer = await memberDevice(relay.url, owner, 'writer')
    onTestFinished(() => closeDevice(writer))
    const envelope = await sealedBy(owner.key, room, owner.engine.keys.current, crypto.getRandomValues(new Uint8Array(20_000)))
    const sender = await rawClient(relay.url, room, await capability(writer.key, room))
    const listener = await rawClient(relay.url, room, await capability(owner.key, room))
    await eventually(() => sender.received.length > 0 && listener.received.length > 0, 5000, 'sync step 1')
    // The attacker's own copy of the room, appending the same bytes again and again.
    const copy = new WireDoc(new Y.Doc())
    Y.applyUpdate(copy.doc, Y.encodeStateAsUpdate((await wireOnRelay(relay.url, room, owner.key)).doc))
    const frames: Uint8Array[] = []
    copy.doc.on('update', (u: Uint8Array) => frames.push(updateFrame(u)))
    for (let i = 0; i < 1001; i++) copy.append([envelope], null)

    sender.send(frames[0]!) // the first is new: stored and relayed once
    await eventually(() => listener.received.some((m) => m.length > 20_000), 5000, 'the envelope to reach the listener')
    const sizeBefore = (await roomBytes()).length
    const heardBefore = listener.received.reduce((n, m) => n + m.length, 0)
    for (const f of frames.slice(1)) sender.send(f)
    sender.send(new Uint8Array([0, 0, 1, 0])) // sync step 1: answered once the copies are handled
    await eventually(() => sender.received.some((m) => m[0] === 0 && m[1] === 1), 20_000, 'the copies to be handled')
    await new Promise((r) => setTimeout(r, 300))

    const grown = (await roomBytes()).length - sizeBefore
    const heard = listener.received.reduce((n, m) => n + m.length, 0) - heardBefore
    // 1,000 copies of 20 KB are 20 MB; what stays of each is a tombstone
    // (merged into one in the room; some 30 bytes each as relayed).
    expect(grown).toBeLessThan(1_000)
    expect(heard).toBeLessThan(64_000)
    expect((await wireOnRelay(relay.url, room, owner.key)).envelopes().filter((e) => Buffer.from(e).equals(Buffer.from(envelope))).length).toBe(1)
    // Dropped, not refused: the sender stays connected.
    expect(await closeCode(sender, 500)).toBe('open')
    listener.ws.close()
    const metrics = await (await fetch(`${relay.httpUrl}/metrics`)).text()
    expect(metrics).toMatch(/kai_relay_copies_dropped_total 1000/)
  })

  it('an honest client re-sending the same item (a reconnect, a second tab) is not refused, and nothing is relayed again', async () => {
    const writer = await memberDevice(relay.url, owner, 'writer')
    onTestFinished(() => closeDevice(writer))
    const envelope = await sealedBy(writer.key, room, owner.engine.keys.current)
    const frame = updateFrame(craftUpdate(writer.wire.doc, (w) => w.append([envelope], null)))
    const listener = await rawClient(relay.url, room, await capability(owner.key, room))
    await eventually(() => listener.received.length > 0, 5000, 'sync step 1')
    const first = await rawClient(relay.url, room, await capability(writer.key, room))
    first.send(frame)
    await eventually(() => listener.received.some((m) => Buffer.from(m).includes(Buffer.from(envelope))), 5000, 'the envelope to be relayed')
    const heard = listener.received.length
    const second = await rawClient(relay.url, room, await capability(writer.key, room))
    for (let i = 0; i < 5; i++) second.send(frame)
    first.send(frame)
    expect(await closeCode(second, 1000)).toBe('open')
    expect(await closeCode(first, 10)).toBe('open')
    expect(listener.received.length).toBe(heard)
    listener.ws.close()
  })
})

describe('limits on what a connection sends', () => {
  it('closes a connection over the byte rate with 4429, though under the message rate', async () => {
    const small = await spawnRelay(['--max-message-bytes', '8192', '--max-bytes-per-second', '1000', '--byte-burst', '20000'])
    onTestFinished(async () => {
      await small.stop()
      small.cleanup()
    })
    const key = await WebCryptoDeviceKey.generate()
    const fresh = (await createGenesis(key, 'bytes')).sessionId
    const frame = new Uint8Array(4000)
    frame[0] = 2 // MESSAGE_AUTH: the relay reads and ignores it
    const calm = await rawClient(small.url, fresh, await capability(key, fresh))
    for (let i = 0; i < 4; i++) calm.send(frame) // 16 KB: within the burst
    const flood = await rawClient(small.url, fresh, await capability(key, fresh))
    for (let i = 0; i < 10; i++) flood.send(frame) // 40 KB in 10 messages
    expect(await closeCode(flood)).toBe(CloseCode.TooMany)
    expect(await closeCode(calm, 10)).toBe('open')
  })
})

describe('presence', () => {
  it('a reader cannot overwrite or remove the owner\'s awareness state: the others still see the owner\'s', async () => {
    const ownerClient = await rawClient(relay.url, room, await capability(owner.key, room))
    ownerClient.send(awarenessFrame(4242, 1, { who: 'owner' }))
    const viewer = await rawClient(relay.url, room, await capability(owner.key, room))
    await eventually(() => presenceIn(viewer.received).get(4242) !== undefined, 5000, 'the owner\'s presence')
    const readerClient = await rawClient(relay.url, room, await capability(reader.key, room))
    readerClient.send(awarenessFrame(4242, 9, { who: 'reader' }))
    readerClient.send(awarenessFrame(777, 1, { who: 'reader' })) // its own: relayed
    await eventually(() => presenceIn(viewer.received).get(777) !== undefined, 5000, 'the reader\'s own presence')
    readerClient.send(awarenessFrame(4242, 10, null)) // a removal
    readerClient.send(awarenessFrame(777, 2, { who: 'reader, later' }))
    await eventually(() => (presenceIn(viewer.received).get(777) as { who?: string } | null)?.who === 'reader, later', 5000, 'the reader\'s second update')
    const late = await rawClient(relay.url, room, await capability(owner.key, room))
    await eventually(() => presenceIn(late.received).get(777) !== undefined, 5000, 'the states a new connection is sent')
    for (const c of [viewer, late]) expect(presenceIn(c.received).get(4242)).toEqual({ who: 'owner' })
    // Dropped, not refused: a stock client echoes the states it hears.
    expect(await closeCode(readerClient, 10)).toBe('open')
    for (const c of [ownerClient, viewer, late]) c.ws.close()
  })

  it('presence belongs to the device that introduced it: its next connection may update it, a reader may not take it over once it left', async () => {
    const first = await rawClient(relay.url, room, await capability(owner.key, room))
    first.send(awarenessFrame(5151, 1, { v: 1 }))
    const viewer = await rawClient(relay.url, room, await capability(owner.key, room))
    await eventually(() => presenceIn(viewer.received).get(5151) !== undefined, 5000, 'the owner\'s presence')
    // A reconnect whose old socket the relay has not seen close yet.
    const second = await rawClient(relay.url, room, await capability(owner.key, room))
    second.send(awarenessFrame(5151, 2, { v: 2 }))
    await eventually(() => (presenceIn(viewer.received).get(5151) as { v?: number } | null)?.v === 2, 5000, 'the second connection\'s update')
    first.ws.close()
    second.ws.close()
    await eventually(() => presenceIn(viewer.received).get(5151) === null, 5000, 'the owner\'s presence to go')
    const readerClient = await rawClient(relay.url, room, await capability(reader.key, room))
    readerClient.send(awarenessFrame(5151, 5, { who: 'reader' }))
    readerClient.send(awarenessFrame(778, 1, { who: 'reader' }))
    await eventually(() => presenceIn(viewer.received).get(778) !== undefined, 5000, 'the reader\'s own presence')
    expect(presenceIn(viewer.received).get(5151)).toBeNull()
    const third = await rawClient(relay.url, room, await capability(owner.key, room))
    third.send(awarenessFrame(5151, 6, { v: 3 }))
    await eventually(() => (presenceIn(viewer.received).get(5151) as { v?: number } | null)?.v === 3, 5000, 'the owner\'s presence again')
    for (const c of [viewer, readerClient, third]) c.ws.close()
  })
})
