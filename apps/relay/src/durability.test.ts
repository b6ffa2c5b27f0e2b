import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import * as Y from 'yjs'
import { afterEach, describe, expect, it } from 'vitest'
import { WireDoc } from '@kai-sync/engine'
import { LevelUpdateStore } from '@kai-sync/storage'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { closeDevice, eventually, memberDevice, ownerDevice, type Device } from './testing/clients'
import { messagesOnRelay } from './testing/session-view'

const cleanups: (() => void | Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function track(relay: RelayProcess): RelayProcess {
  cleanups.push(() => relay.cleanup())
  return relay
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : [path]
  })
}

describe('durability', () => {
  it('a restart keeps every room, and SIGTERM exits cleanly', async () => {
    const relay = track(await spawnRelay())
    const owners: Device[] = []
    for (let r = 0; r < 3; r++) {
      const owner = await ownerDevice(relay.url)
      for (let i = 0; i < 5; i++) owner.engine.session.appendMessage({ id: `r${r}m${i}`, role: 'user', content: `room ${r} message ${i}` })
      await owner.engine.flush()
      await owner.relay.whenAcknowledged()
      owners.push(owner)
    }
    for (const o of owners) closeDevice(o)
    expect(await relay.stop()).toBe(0)
    expect(relay.logs.some((l) => l.includes('"stopped"'))).toBe(true)

    const again = track(await relay.restart())
    for (const [r, o] of owners.entries()) {
      const ids = await messagesOnRelay(again.url, o.engine.sessionId, o.key, o.engine.keys.current, 5)
      expect(ids.sort()).toEqual([0, 1, 2, 3, 4].map((i) => `r${r}m${i}`))
    }
    await again.stop()
  })

  it('kill -9 under load: what the relay acknowledged survives, and what it missed arrives after reconnecting', async () => {
    const relay = track(await spawnRelay(['--max-messages-per-second', '10000', '--message-burst', '10000']))
    const owner = await ownerDevice(relay.url)
    const writer = await memberDevice(relay.url, owner)
    cleanups.push(() => {
      closeDevice(owner)
      closeDevice(writer)
    })
    let written = 0
    let stop = false
    const load = (async () => {
      while (!stop) {
        const d = written % 2 ? owner : writer
        d.engine.session.appendMessage({ id: `w${written}`, role: 'user', content: `message ${written} under load` })
        written++
        await new Promise((r) => setTimeout(r, 2))
      }
    })()
    await eventually(() => written >= 150, 20_000, 'load to build up')
    // What the relay acknowledged to the owner before it dies must survive.
    const ackedBeforeKill = new Map(owner.relay.acknowledged)
    await relay.kill9()
    // Clients keep writing while the relay is down.
    const writtenAtKill = written
    await eventually(() => written >= writtenAtKill + 100, 20_000, 'writes while the relay is down')
    const again = track(await relay.restart())
    cleanups.push(() => void again.stop())
    await new Promise((r) => setTimeout(r, 300))
    stop = true
    await load
    const all = Array.from({ length: written }, (_, i) => `w${i}`).sort()

    await owner.engine.whenIdle()
    await writer.engine.whenIdle()
    await eventually(() => owner.engine.session.messageIds().length === written && writer.engine.session.messageIds().length === written, 30_000, 'both devices to converge after the restart')
    expect([...owner.engine.session.messageIds()].sort()).toEqual(all)
    await owner.relay.whenAcknowledged()
    await writer.relay.whenAcknowledged()
    for (const [client, clock] of ackedBeforeKill) expect(owner.relay.acknowledged.get(client) ?? 0).toBeGreaterThanOrEqual(clock)
    // A fresh context that only talks to the restarted relay sees everything.
    const fresh = await messagesOnRelay(again.url, owner.engine.sessionId, owner.key, owner.engine.keys.current, written)
    expect(fresh.sort()).toEqual(all)
  })

  it('kill -9 while the relay compacts a room\'s stored state, cycle after cycle: every acknowledged update survives', async () => {
    // Compacting after 20 records, under load: a compaction every few dozen
    // updates, and each kill lands just after one starts (its log line).
    let relay = track(await spawnRelay(['--compact-stored-after', '20', '--max-messages-per-second', '10000', '--message-burst', '10000']))
    const owner = await ownerDevice(relay.url)
    const writer = await memberDevice(relay.url, owner)
    cleanups.push(() => {
      closeDevice(owner)
      closeDevice(writer)
    })
    let written = 0
    let stop = false
    const load = (async () => {
      while (!stop) {
        const d = written % 2 ? owner : writer
        d.engine.session.appendMessage({ id: `c${written}`, role: 'user', content: `message ${written} under compaction` })
        written++
        await new Promise((r) => setTimeout(r, 4))
      }
    })()
    const CYCLES = 3
    const acked: Map<number, number>[] = []
    let midCompaction = 0
    try {
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const before = relay.logs.filter((l) => l.includes('"compacting stored state"')).length
        let seen = 0
        await relay.waitFor((l) => l.includes('"compacting stored state"') && ++seen > before, 20_000, 'a compaction to start')
        acked.push(new Map(owner.relay.acknowledged), new Map(writer.relay.acknowledged))
        await relay.kill9()
        // Did it die between starting and finishing the compaction?
        const count = (msg: string) => relay.logs.filter((l) => l.includes(`"${msg}"`)).length
        if (count('compacting stored state') > count('compacted stored state')) midCompaction++
        relay = track(await relay.restart())
      }
      await new Promise((r) => setTimeout(r, 300))
    } finally {
      stop = true
      await load
    }
    cleanups.push(() => void relay.stop())
    const all = Array.from({ length: written }, (_, i) => `c${i}`).sort()
    await eventually(() => owner.engine.session.messageIds().length === written && writer.engine.session.messageIds().length === written, 30_000, 'both devices to converge')
    await owner.relay.whenAcknowledged()
    await writer.relay.whenAcknowledged()
    let lost = 0
    for (const [i, map] of acked.entries()) {
      const now = (i % 2 ? writer : owner).relay.acknowledged
      for (const [client, clock] of map) if ((now.get(client) ?? 0) < clock) lost++
    }
    const fresh = await messagesOnRelay(relay.url, owner.engine.sessionId, owner.key, owner.engine.keys.current, written)
    lost += all.length - fresh.length
    const held = owner.engine.status.held + writer.engine.status.held
    console.log(`kill during compaction: cycles ${CYCLES}, killed before the compaction finished ${midCompaction}, writes acknowledged ${written}, lost ${lost}, held ${held}`)
    expect(fresh.sort()).toEqual(all)
    expect(lost).toBe(0)
    expect(held).toBe(0)
  }, 120_000)

  it('what the relay stores on disk and logs never contains the plaintext of a session', async () => {
    const MARKER = 'PLAINTEXT-MARKER-d41d8cd98f'
    const relay = track(await spawnRelay())
    const owner = await ownerDevice(relay.url)
    owner.engine.session.appendMessage({ id: 'secret', role: 'user', content: `the marker ${MARKER} in a message` })
    owner.engine.session.setConfig('system_prompt', MARKER)
    await owner.engine.flush()
    await owner.relay.whenAcknowledged()
    closeDevice(owner)
    expect(await relay.stop()).toBe(0)
    const files = filesUnder(relay.dataDir)
    expect(files.length).toBeGreaterThan(0)
    for (const f of files) expect(readFileSync(f).includes(Buffer.from(MARKER)), f).toBe(false)
    expect(relay.logs.join('\n')).not.toContain(MARKER)
    // The envelope is there, encrypted: the session id is stored, the marker is not.
    expect(files.some((f) => readFileSync(f).includes(Buffer.from(owner.engine.sessionId)))).toBe(true)
  })

  it('unloads idle rooms, merging their stored updates into one, and serves them again after', async () => {
    const relay = track(await spawnRelay(['--compact-stored-after', '5', '--idle-room-ms', '200']))
    const owner = await ownerDevice(relay.url)
    for (let i = 0; i < 30; i++) {
      owner.engine.session.appendMessage({ id: `m${i}`, role: 'user', content: `message ${i}` })
      await owner.engine.flush()
    }
    await owner.relay.whenAcknowledged()
    const health = async () => (await (await fetch(`${relay.httpUrl}/healthz`)).json()) as { rooms: number }
    expect((await health()).rooms).toBe(1)
    closeDevice(owner)
    await eventually(async () => (await health()).rooms === 0, 5000, 'the idle room to unload')
    expect(await relay.stop()).toBe(0)

    const store = await LevelUpdateStore.open(relay.dataDir)
    const stored = await store.load(owner.engine.sessionId)
    await store.close()
    expect(stored.length).toBe(1)
    const doc = new Y.Doc()
    for (const s of stored) Y.applyUpdate(doc, s.update)
    expect(new WireDoc(doc).envelopes().length).toBe(owner.wire.envelopes().length)

    const again = track(await relay.restart())
    const ids = await messagesOnRelay(again.url, owner.engine.sessionId, owner.key, owner.engine.keys.current, 30)
    expect(ids.length).toBe(30)
    await again.stop()
  })
})
