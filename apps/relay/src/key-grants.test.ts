import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BoxKey, SessionKey, WebCryptoDeviceKey, createGenesis, grantKey, type DeviceKey } from '@kai-sync/crypto'
import { WireDoc } from '@kai-sync/engine'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { capability, closeDevice, eventually, memberDevice, ownerDevice, rawClient, updateFrame, wireOnRelay, type Device } from './testing/clients'
import { craftUpdate } from './testing/forge'
import { CloseCode } from './close-codes'

// Key grants (a session key wrapped for one device's box, signed by its
// issuer) in the wire doc's `keys` map, through a spawned relay: only an
// owner's or writer's grant for this session is merged and served; nothing
// else is, and no grant is ever deleted.

let relay: RelayProcess
let owner: Device
let writer: Device
let reader: Device
let room: string
const epochOne = SessionKey.generate(1, { extractable: true })

beforeAll(async () => {
  relay = await spawnRelay()
  owner = await ownerDevice(relay.url, { box: await BoxKey.generate() })
  room = owner.engine.sessionId
  await owner.relay.whenSynced()
  writer = await memberDevice(relay.url, owner, 'writer', { box: await BoxKey.generate() })
  reader = await memberDevice(relay.url, owner, 'reader', { box: await BoxKey.generate() })
  await owner.relay.whenAcknowledged()
})
afterAll(async () => {
  for (const d of [owner, writer, reader]) closeDevice(d)
  await relay.stop()
  relay.cleanup()
})

/** A grant of the epoch-1 key to `to`, signed by `issuer` (for this session unless told). */
async function grantTo(to: Device, issuer: DeviceKey, sessionId = room) {
  return grantKey({ sessionId, key: await epochOne, recipient: to.key.publicKey, recipientBox: to.box!.publicKey, issuer })
}

let lastReason = ''

/** Sends the grant as a crafted update on a raw connection of `sender`; resolves with the code the relay closes it with. */
async function sendGrant(bytes: Uint8Array, sender: DeviceKey = owner.key, change?: (w: WireDoc) => void): Promise<number> {
  const client = await rawClient(relay.url, room, await capability(sender, room))
  client.send(updateFrame(craftUpdate(owner.wire.doc, change ?? ((w) => w.keys.set(WireDoc.entryKey(bytes), bytes)))))
  const { code, reason } = await client.closed
  lastReason = reason
  return code
}

async function onRelay(bytes: Uint8Array): Promise<boolean> {
  return (await wireOnRelay(relay.url, room, owner.key)).keys.has(WireDoc.entryKey(bytes))
}

describe('key grants through the relay', () => {
  it('a grant signed by the owner is merged and served: its recipient opens it and reads what is sealed under the new epoch', async () => {
    const grant = await grantTo(writer, owner.key)
    owner.wire.addKeyGrants([grant.bytes], null)
    await owner.relay.whenAcknowledged()
    expect(await onRelay(grant.bytes)).toBe(true)
    await eventually(() => writer.engine.keys.has(1), 8000, 'the writer to open its grant')
    // Served to everyone, opened only by its recipient.
    await eventually(() => reader.wire.keyGrants().length > 0, 8000, 'the grant to reach the reader too')
    expect(reader.engine.keys.has(1)).toBe(false)
    // The owner moves to epoch 1; the writer, holding the key now, reads it.
    owner.engine.keys.add(await epochOne)
    owner.engine.session.appendMessage({ id: 'e1', role: 'user', content: 'sealed under epoch 1' })
    await owner.engine.flush()
    await eventually(() => writer.engine.session.message('e1')?.content === 'sealed under epoch 1', 8000, 'the epoch-1 message at the writer')
  })

  it('a grant from a writer is merged too', async () => {
    const grant = await grantTo(reader, writer.key)
    const client = await rawClient(relay.url, room, await capability(writer.key, room))
    client.send(updateFrame(craftUpdate(owner.wire.doc, (w) => w.keys.set(WireDoc.entryKey(grant.bytes), grant.bytes))))
    await eventually(() => onRelay(grant.bytes), 8000, 'the writer\'s grant on the relay')
    await eventually(() => reader.engine.keys.has(1), 8000, 'the reader to open its grant')
    expect(client.ws.readyState).toBe(client.ws.OPEN)
    client.ws.close()
  })

  it('refuses a forged grant (another key\'s signature under the owner\'s name) with 4403 and does not merge it', async () => {
    const stranger = await WebCryptoDeviceKey.generate()
    const grant = await grantTo(writer, stranger)
    const bytes = Buffer.from(grant.bytes)
    bytes.set(owner.key.publicKey, bytes.lastIndexOf(Buffer.from(stranger.publicKey)))
    const forged = new Uint8Array(bytes)
    expect(await sendGrant(forged)).toBe(CloseCode.Forbidden)
    expect(lastReason).toMatch(/signature does not verify/)
    expect(await onRelay(forged)).toBe(false)
  })

  it('refuses a grant issued by a reader with 4403, on the reader\'s connection or the owner\'s', async () => {
    const grant = await grantTo(writer, reader.key)
    expect(await sendGrant(grant.bytes, reader.key)).toBe(CloseCode.Forbidden)
    expect(await sendGrant(grant.bytes, owner.key)).toBe(CloseCode.Forbidden)
    expect(lastReason).toMatch(/may not grant keys/)
    expect(await onRelay(grant.bytes)).toBe(false)
  })

  it('refuses a grant issued by a device outside the roster with 4403', async () => {
    const stranger = await WebCryptoDeviceKey.generate()
    const grant = await grantTo(writer, stranger)
    expect(await sendGrant(grant.bytes)).toBe(CloseCode.Forbidden)
    expect(await onRelay(grant.bytes)).toBe(false)
  })

  it('refuses a grant signed for another session with 4403', async () => {
    const other = (await createGenesis(owner.key, 'other')).sessionId
    const grant = await grantTo(writer, owner.key, other)
    expect(await sendGrant(grant.bytes)).toBe(CloseCode.Forbidden)
    expect(lastReason).toMatch(/another session/)
    expect(await onRelay(grant.bytes)).toBe(false)
  })

  it('refuses bytes in `keys` that are not a key grant, or a grant under the wrong key, with 4400', async () => {
    const junk = new Uint8Array([1, 2, 3, 4, 5])
    expect(await sendGrant(junk)).toBe(CloseCode.BadRequest)
    expect(await onRelay(junk)).toBe(false)
    const grant = await grantTo(writer, owner.key)
    expect(await sendGrant(grant.bytes, owner.key, (w) => w.keys.set('not-its-hash', grant.bytes))).toBe(CloseCode.BadRequest)
    expect((await wireOnRelay(relay.url, room, owner.key)).keys.has('not-its-hash')).toBe(false)
  })

  it('refuses deleting a grant with 4403, and the grant stays', async () => {
    await eventually(() => owner.wire.keys.size > 0, 5000, 'a grant in the owner\'s wire doc')
    const key = owner.wire.keys.keys().next().value!
    expect(await sendGrant(new Uint8Array(), owner.key, (w) => w.keys.delete(key))).toBe(CloseCode.Forbidden)
    expect(lastReason).toMatch(/never deleted/)
    // Nor may a new value replace it (Yjs would delete the one it supersedes).
    const other = await grantTo(writer, owner.key)
    expect(await sendGrant(other.bytes, owner.key, (w) => w.keys.set(key, other.bytes))).toBe(CloseCode.BadRequest)
    expect((await wireOnRelay(relay.url, room, owner.key)).keys.has(key)).toBe(true)
    const metrics = await (await fetch(`${relay.httpUrl}/metrics`)).text()
    expect(metrics).toMatch(/kai_relay_rejections_total\{code="4403"\} [1-9]/)
  })
})
