import * as Y from 'yjs'
import { afterEach, describe, expect, it } from 'vitest'
import { LevelUpdateStore } from '@kai-sync/storage'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { closeDevice, ownerDevice } from './testing/clients'
import { messagesOnRelay } from './testing/session-view'

// The ways Yjs servers are known to lose data around their stored state,
// each against the relay process and its real LevelDB store.

const cleanups: (() => void | Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

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
})
