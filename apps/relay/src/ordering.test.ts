import * as Y from 'yjs'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { WireDoc } from '@kai-sync/engine'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { capability, closeDevice, eventually, ownerDevice, rawClient, updateFrame, type Device } from './testing/clients'
import { sealedBy } from './testing/forge'

// Yjs would merge an update whose predecessors it lacks later, when they
// arrive, without the relay seeing it again. The relay defers such an
// update instead, and checks it once what it depends on has been merged.

let relay: RelayProcess
let owner: Device
beforeAll(async () => {
  relay = await spawnRelay()
  owner = await ownerDevice(relay.url)
  await owner.relay.whenAcknowledged()
})
afterAll(async () => {
  closeDevice(owner)
  await relay.stop()
  relay.cleanup()
})

it('an update that arrives before the one it builds on is held, then merged', async () => {
  const room = owner.engine.sessionId
  const doc = new Y.Doc()
  Y.applyUpdate(doc, Y.encodeStateAsUpdate(owner.wire.doc))
  const wire = new WireDoc(doc)
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  const first = await sealedBy(owner.key, room, owner.engine.keys.current)
  const second = await sealedBy(owner.key, room, owner.engine.keys.current)
  wire.append([first], null)
  wire.append([second], null)

  const client = await rawClient(relay.url, room, await capability(owner.key, room), '&ack=1')
  client.send(updateFrame(updates[1]!))
  client.send(updateFrame(updates[0]!))
  // Both arrive at the owner's own replica through the relay.
  await eventually(() => owner.wire.envelopes().length === wire.envelopes().length, 5000, 'both envelopes at the other client')
  expect(client.ws.readyState).toBe(client.ws.OPEN)
  const metrics = await (await fetch(`${relay.httpUrl}/metrics`)).text()
  expect(metrics).toMatch(/kai_relay_updates_deferred_total [1-9]/)
  client.ws.close()
})

it('an update whose predecessor never comes stays out of the room, and a flood of them is refused with 4429', async () => {
  const room = owner.engine.sessionId
  const doc = new Y.Doc()
  Y.applyUpdate(doc, Y.encodeStateAsUpdate(owner.wire.doc))
  const wire = new WireDoc(doc)
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  for (let i = 0; i < 70; i++) wire.append([await sealedBy(owner.key, room, owner.engine.keys.current)], null)
  const before = owner.wire.envelopes().length
  const client = await rawClient(relay.url, room, await capability(owner.key, room))
  // Everything but the first: each waits for the one before it.
  for (const u of updates.slice(1)) client.send(updateFrame(u))
  expect((await client.closed).code).toBe(4429)
  await new Promise((r) => setTimeout(r, 200))
  expect(owner.wire.envelopes().length).toBe(before)
})
