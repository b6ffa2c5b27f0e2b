import { afterAll, describe, expect, it } from 'vitest'
import { SessionKey, grantKey, newStreamId, sealEnvelope } from '@kai-sync/crypto'
import { capabilityToParam, signCapability } from '@kai-sync/crypto/capability'
import { WireDoc } from '@kai-sync/engine'
import { connectRelay } from '@kai-sync/providers'
import { DataDir } from './data-dir'
import { loadOrCreateDeviceKeys } from './key-files'
import { DaemonClient, type SseEvent } from './cli/daemon-client'
import { eventually, kai, spawnDaemon, spawnKaiRelay } from './testing'

// "synced" is a promise: the relay holds every local change and this
// device shows everything there is. An envelope held back (here: one whose
// predecessor has not arrived) is never "synced", and every surface that
// shows the status says how many are held and why.

const cleanups: Array<() => void> = []
afterAll(() => {
  for (const c of cleanups.reverse()) c()
})

describe('the sync status a daemon reports', () => {
  it('counts what it holds back, by code, on every surface, and says synced only once nothing is held', async () => {
    const relay = await spawnKaiRelay()
    cleanups.push(() => relay.cleanup())
    const [a, b] = await Promise.all([spawnDaemon({ relayUrl: relay.url, label: 'a' }), spawnDaemon({ relayUrl: relay.url, label: 'b' })])
    cleanups.push(() => a.cleanup(), () => b.cleanup())
    const sessionId = (await kai(a, 'create')).trim()
    const link = (await kai(a, 'handoff', sessionId, '--to', 'headless', '--type', 'mirror')).split('\n').find((l) => l.startsWith('kai://resume#kai='))!
    await kai(b, 'resume', link, '--label', 'b')
    const summary = async () => (await a.api('GET', '/sessions')).json.sessions.find((s: { session_id: string }) => s.session_id === sessionId)
    await eventually(summary, (s) => s.sync === 'synced', 'a to be synced')

    const events: SseEvent[] = []
    const abort = new AbortController()
    cleanups.push(() => abort.abort())
    void new DaemonClient({ dataDir: a.dataDir }).events(`/session/${sessionId}/events`, (e) => events.push(e), abort.signal).catch(() => undefined)

    // An envelope of b's, signed with b's own keys, sealed under a key epoch
    // a has no key for: a holds it until a grant of that key arrives.
    const dir = new DataDir(b.dataDir)
    const { device } = await loadOrCreateDeviceKeys(dir)
    const later = await SessionKey.generate(7, { extractable: true })
    const header = { kind: 'update' as const, sessionId, stream: newStreamId(), seq: 1, prev: new Uint8Array(32), createdAt: Date.now(), clientIds: [], covers: [] }
    const sealed = await sealEnvelope({ header, plaintext: new Uint8Array([0, 0]), key: later, signer: device })
    const wire = new WireDoc()
    const direct = await connectRelay(wire, relay.url, async () => capabilityToParam(await signCapability({ room: sessionId }, device)))
    cleanups.push(() => direct.destroy())
    await direct.whenSynced(20_000)
    wire.append([sealed.bytes], 'test')

    const held = await eventually(summary, (s) => s.held === 1, 'a to hold the envelope')
    expect(held).toMatchObject({ sync: 'saved', held: 1, held_by: { wrong_epoch: 1 }, refused: 0 })
    expect((await a.api('GET', `/session/${sessionId}`)).json.sync).toMatchObject({ state: 'saved', held: 1, held_by: { wrong_epoch: 1 } })
    expect((await a.api('GET', '/health')).json).toMatchObject({ unsynced: 1, held: 1 })
    await eventually(async () => events, (es) => es.some((e) => e.event === 'status' && (e.data as { held: number }).held === 1), 'a status event with the hold')
    const listed = await kai(a, 'list')
    expect(listed).toMatch(/saved\s+1 \(wrong_epoch 1\)/)

    // b grants a the key: the envelope applies, and only then is a synced.
    const keysOfA = await loadOrCreateDeviceKeys(new DataDir(a.dataDir))
    const grant = await grantKey({ sessionId, key: later, recipient: keysOfA.device.publicKey, recipientBox: keysOfA.box.publicKey, issuer: device })
    wire.addKeyGrants([grant.bytes], 'test')
    const healed = await eventually(summary, (s) => s.held === 0 && s.sync === 'synced', 'a to apply both and be synced')
    expect(healed).toMatchObject({ held_by: {}, refused: 0 })
    expect((await a.api('GET', '/health')).json).toMatchObject({ unsynced: 0, held: 0 })
    direct.destroy()
  })
})
