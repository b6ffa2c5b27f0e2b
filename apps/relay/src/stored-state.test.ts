import * as Y from 'yjs'
import { afterEach, describe, expect, it } from 'vitest'
import { LevelUpdateStore } from '@kai-sync/storage'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { connectRelay } from '@kai-sync/providers'
import { capability, closeDevice, eventually, ownerDevice, wireOnRelay, type Device } from './testing/clients'
import { messagesOnRelay } from './testing/session-view'

// The ways Yjs servers are known to lose data around their stored state,
// each against the relay process and its real LevelDB store.

const cleanups: (() => void | Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function track(relay: RelayProcess): RelayProcess {
  cleanups.push(() => relay.cleanup())
  return relay
}

async function metric(relay: RelayProcess, name: string): Promise<number> {
  const text = await (await fetch(`${relay.httpUrl}/metrics`)).text()
  return Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? 0)
}

/** A room with `n` acknowledged messages, its owner disconnected and the relay stopped. */
async function storedRoom(relay: RelayProcess, n: number) {
  const owner = await ownerDevice(relay.url)
  for (let i = 0; i < n; i++) {
    owner.engine.session.appendMessage({ id: `m${i}`, role: 'user', content: `message ${i}` })
    await owner.engine.flush()
  }
  await owner.relay.whenAcknowledged()
  closeDevice(owner)
  expect(await relay.stop()).toBe(0)
  return { room: owner.engine.sessionId, key: owner.key, sessionKey: owner.engine.keys.current, ids: Array.from({ length: n }, (_, i) => `m${i}`) }
}

describe('stored state', () => {
  it('a corrupt stored update does not block loading: it is kept aside, logged and counted, and the rest is served', async () => {
    const relay = track(await spawnRelay())
    const { room, key, sessionKey, ids } = await storedRoom(relay, 5)
    const store = await LevelUpdateStore.open(relay.dataDir)
    const good = Y.encodeStateAsUpdate(new Y.Doc())
    const truncated = (await store.load(room))[0]!.update.slice(0, 40)
    await store.append(room, truncated) // a write cut short
    await store.append(room, new Uint8Array(32).fill(0xff)) // bytes that are no update at all
    await store.append(room, good)
    await store.close()

    const again = track(await relay.restart())
    expect((await messagesOnRelay(again.url, room, key, sessionKey, ids.length)).sort()).toEqual(ids)
    expect(await metric(again, 'kai_relay_stored_updates_quarantined_total')).toBe(2)
    expect(again.logs.filter((l) => l.includes('stored update quarantined')).length).toBe(2)
    // Kept where they are: compaction on unload merges the rest and leaves them.
    expect(await again.stop()).toBe(0)
    const reopened = await LevelUpdateStore.open(relay.dataDir)
    const records = (await reopened.load(room)).map((s) => Buffer.from(s.update))
    await reopened.close()
    expect(records.some((r) => r.equals(Buffer.from(truncated)))).toBe(true)
    expect(records.some((r) => r.equals(Buffer.from(new Uint8Array(32).fill(0xff))))).toBe(true)
  })

  it('no connection is served a room before its stored state is loaded, however many arrive at once after a restart', async () => {
    // Killed, so nothing is compacted: the room is 150 records to load.
    const relay = track(await spawnRelay(['--compact-stored-after', '100000']))
    const owner = await ownerDevice(relay.url)
    for (let i = 0; i < 150; i++) {
      owner.engine.session.appendMessage({ id: `m${i}`, role: 'user', content: `message ${i}` })
      await owner.engine.flush()
    }
    await owner.relay.whenAcknowledged()
    const expected = owner.wire.envelopes().length
    closeDevice(owner)
    await relay.kill9()
    const again = track(await relay.restart())
    // Each reads the sync step 2 the relay answers its first sync step 1 with.
    const served = await Promise.all(Array.from({ length: 6 }, () => wireOnRelay(again.url, owner.engine.sessionId, owner.key).then((w) => w.envelopes().length)))
    expect(served).toEqual(served.map(() => expected))
    await again.stop()
  })

  it('an unload racing a load stores no empty or partial doc: a room unloaded after every visit keeps every message', async () => {
    // Every unload compacts (one record is already too many), 1 ms after the last client left.
    const relay = track(await spawnRelay(['--idle-room-ms', '1', '--compact-stored-after', '1']))
    const owner: Device = await ownerDevice(relay.url)
    cleanups.push(() => closeDevice(owner))
    const room = owner.engine.sessionId
    const CYCLES = 10
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      owner.engine.session.appendMessage({ id: `m${cycle}`, role: 'user', content: `message ${cycle}` })
      await owner.engine.flush()
      await owner.relay.whenAcknowledged()
      const expected = owner.wire.envelopes().length
      // The owner leaves: the room unloads and compacts, while fresh
      // connections load it again at staggered moments.
      owner.relay.destroy()
      const served = await Promise.all([0, 1, 2, 4, 8].map(async (ms) => {
        await sleep(ms)
        return (await wireOnRelay(relay.url, room, owner.key)).envelopes().length
      }))
      expect(served, `cycle ${cycle}`).toEqual(served.map(() => expected))
      owner.relay = await connectRelay(owner.wire, relay.url, () => capability(owner.key, room), owner.engine)
      await owner.relay.whenSynced()
    }
    const ids = Array.from({ length: CYCLES }, (_, i) => `m${i}`)
    expect(await relay.stop()).toBe(0)
    const again = track(await relay.restart())
    expect((await messagesOnRelay(again.url, room, owner.key, owner.engine.keys.current, CYCLES)).sort()).toEqual(ids.sort())
    await again.stop()
  })

  it('restarts re-seed nothing: the room holds the same envelopes, roster entries and messages after each, once', async () => {
    let relay = track(await spawnRelay())
    const owner = await ownerDevice(relay.url)
    cleanups.push(() => closeDevice(owner))
    const room = owner.engine.sessionId
    for (let i = 0; i < 5; i++) owner.engine.session.appendMessage({ id: `m${i}`, role: 'user', content: `message ${i}` })
    await owner.engine.flush()
    await owner.relay.whenAcknowledged()
    const counts = (w: { envelopes(): unknown[]; rosterEntries(): unknown[] }) => ({ envelopes: w.envelopes().length, roster: w.rosterEntries().length })
    const before = counts(owner.wire)
    for (const how of ['stop', 'kill', 'stop'] as const) {
      if (how === 'stop') expect(await relay.stop()).toBe(0)
      else await relay.kill9()
      relay = track(await relay.restart())
      // The owner's provider reconnects by itself and syncs again.
      await eventually(() => owner.relay.synced, 15_000, 'the owner to sync again')
      await owner.relay.whenAcknowledged()
      expect(counts(await wireOnRelay(relay.url, room, owner.key)), `after ${how}`).toEqual(before)
      expect(counts(owner.wire)).toEqual(before)
    }
    expect(owner.engine.session.messageIds().length).toBe(5)
    expect((await messagesOnRelay(relay.url, room, owner.key, owner.engine.keys.current)).length).toBe(5)
    await relay.stop()
  })
})
