import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { SessionKeyring, WebCryptoDeviceKey } from '@kai-sync/crypto'
import { createSession } from './session'
import { SyncEngine } from './sync-engine'
import { WireDoc } from './wire-doc'
import type { SyncStatus } from './sync-status'

describe('sync status', () => {
  it('goes pending, then saved when the local store holds it, then synced when the relay does', async () => {
    const engine = await createSession({ device: await WebCryptoDeviceKey.generate(), mode: 'tab', agentId: 'a', userId: 'u', batchWindowMs: 60_000 })
    await engine.flush()
    const local = engine.registerStore('local', 'indexeddb')
    const relay = engine.registerStore('remote', 'relay')
    const seen: Array<SyncStatus['state']> = []
    engine.on('status', (s) => seen.push(s.state))
    const holdsAll = () => Y.decodeStateVector(Y.encodeStateVector(engine.wire.doc))

    local.acknowledge(holdsAll())
    relay.acknowledge(holdsAll())
    expect(engine.status.state).toBe('synced')

    engine.session.appendMessage({ id: 'm', role: 'user', content: 'hi' })
    expect(engine.status).toMatchObject({ state: 'pending', unsealed: 1 })
    await engine.flush()
    expect(engine.status.state).toBe('pending') // sealed, but no store holds it yet
    local.acknowledge(holdsAll())
    expect(engine.status.state).toBe('saved')
    relay.acknowledge(holdsAll())
    expect(engine.status.state).toBe('synced')
    expect(seen).toEqual(expect.arrayContaining(['pending', 'saved', 'synced']))

    // With the store gone, the in-memory wire doc is all there is.
    local.remove()
    relay.remove()
    expect(engine.status.state).toBe('saved')
    engine.destroy()
  })
})

describe('the status never says synced while something is held', () => {
  it('an envelope held for a gap keeps the status at saved, counted by its code, until its predecessor arrives; a refused one is counted', async () => {
    const owner = await createSession({ device: await WebCryptoDeviceKey.generate(), mode: 'tab', agentId: 'a', userId: 'u', compactAfter: null })
    const writerKey = await WebCryptoDeviceKey.generate()
    await owner.setRole(writerKey.publicKey, 'writer', { label: 'writer' })
    const writerWire = new WireDoc()
    Y.applyUpdate(writerWire.doc, Y.encodeStateAsUpdate(owner.wire.doc))
    const writer = await SyncEngine.open({ sessionId: owner.sessionId, wire: writerWire, device: writerKey, keys: new SessionKeyring([owner.keys.current]), mode: 'tab', compactAfter: null })
    writer.session.appendMessage({ id: 'one', role: 'user', content: 'first' })
    await writer.flush()
    writer.session.appendMessage({ id: 'two', role: 'user', content: 'second' })
    await writer.flush()
    const [first, second] = writer.wire.envelopes().slice(-2)

    const relay = owner.registerStore('remote', 'relay')
    const holdsAll = () => Y.decodeStateVector(Y.encodeStateVector(owner.wire.doc))
    relay.acknowledge(holdsAll())
    await owner.whenIdle()
    expect(owner.status.state).toBe('synced')

    owner.wire.doc.transact(() => owner.wire.log.push([second!]), 'arrival')
    await owner.whenIdle()
    relay.acknowledge(holdsAll())
    expect(owner.status).toMatchObject({ state: 'saved', held: 1, heldBy: { gap: 1 }, refused: 0 })

    owner.wire.doc.transact(() => owner.wire.log.push([first!]), 'arrival')
    await owner.whenIdle()
    relay.acknowledge(holdsAll())
    expect(owner.status).toMatchObject({ state: 'synced', held: 0, heldBy: {} })

    owner.wire.doc.transact(() => owner.wire.log.push([new Uint8Array([1, 2, 3])]), 'arrival')
    await owner.whenIdle()
    expect(owner.status).toMatchObject({ refused: 1, refusedBy: { malformed: 1 } })
    writer.destroy()
    owner.destroy()
  })
})
