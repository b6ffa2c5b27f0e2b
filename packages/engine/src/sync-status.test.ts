import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { WebCryptoDeviceKey } from '@kai-sync/crypto'
import { createSession } from './session'
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
