import * as Y from 'yjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WireDoc } from '@kai-sync/engine'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { capability, closeDevice, eventually, memberDevice, ownerDevice, stockProvider } from './testing/clients'

let relay: RelayProcess
beforeAll(async () => {
  relay = await spawnRelay()
})
afterAll(async () => {
  await relay.stop()
  relay.cleanup()
})

describe('syncing through the relay', () => {
  it('two devices converge, and the status says synced once the relay stored the change', async () => {
    const owner = await ownerDevice(relay.url)
    await owner.relay.whenSynced()
    const writer = await memberDevice(relay.url, owner)
    owner.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'hello from the owner' })
    writer.engine.session.appendMessage({ id: 'm2', role: 'assistant', content: 'hello from the writer' })
    await eventually(() => owner.engine.session.messageIds().length === 2 && writer.engine.session.messageIds().length === 2, 10_000, 'both messages on both devices')
    await owner.engine.whenIdle()
    await eventually(() => owner.engine.status.state === 'synced', 5000, 'synced status')
    closeDevice(owner)
    closeDevice(writer)
  })

  it('the stock y-websocket provider syncs the wire doc unchanged', async () => {
    const owner = await ownerDevice(relay.url)
    owner.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'stored before the stock client came' })
    await owner.engine.flush()
    await owner.relay.whenAcknowledged()
    // The stock provider, holding the owner's key only to sign its capability.
    const doc = new Y.Doc()
    const provider = stockProvider(relay.url, owner.engine.sessionId, doc, await capability(owner.key, owner.engine.sessionId))
    await new Promise<void>((resolve) => provider.once('sync', () => resolve()))
    const mirror = new WireDoc(doc)
    await eventually(() => mirror.envelopes().length === owner.wire.envelopes().length, 5000, 'the stock client to hold every envelope')
    expect(mirror.rosterEntries().length).toBe(owner.wire.rosterEntries().length)
    // And live: a later envelope arrives at the stock client too.
    owner.engine.session.appendMessage({ id: 'm2', role: 'user', content: 'live' })
    await owner.engine.flush()
    await eventually(() => mirror.envelopes().length === owner.wire.envelopes().length, 5000, 'the live envelope')
    expect(Y.encodeStateVector(doc)).toEqual(Y.encodeStateVector(owner.wire.doc))
    provider.destroy()
    closeDevice(owner)
  })
})
