import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { eventually, spawnDaemon, spawnKaiRelay, type DaemonProcess, type TestRelay } from './testing'

// Issue 12: a write a daemon acknowledged, sealed under a key epoch that a
// removal had ended before the daemon heard of it, survives a SIGKILL
// between the relay's drop and the new key. The relay drops the envelope
// (stale_epoch: a tombstone in its place), so from then until the writer
// holds the new key and re-seals it, the content is on the writer's disk in
// `sessions/<id>.dropped.json` alone. Through a spawned kai-relay and
// spawned daemons:
// - the owner `a` removes `w` while nobody can reach the relay and before
//   it knows of `b` (b enrolled through w's invite while a was stopped), so
//   the new epoch's key is granted to a alone; the only device that will
//   grant it to b is a, three seconds (FALLBACK_GRANT_MS) after it sees b;
// - b, offline too, acknowledges a message sealed under the old epoch;
// - the relay comes back; a delivers the removal and is killed as soon as
//   its session shows synced, well inside those three seconds (the one
//   timing this test leans on), so it grants b nothing;
// - b comes back armed with `dropped:kept` (test-kill.ts); the relay drops
//   its envelope and tells the other connections, so b learns of the drop
//   when it connects again, and dies once the envelope is in that file and
//   its wire store holds the drop.
//   No grant of the new epoch's key to b exists anywhere, so the kill
//   lands before the key (its key file shows epoch 0 alone);
// - b restarts, then a: a grants b the key, b re-seals the message.

const cleanups: Array<() => void> = []
afterAll(() => {
  for (const c of cleanups.reverse()) c()
})

interface Summary {
  session_id: string
  sync: string
  held?: number
}

describe('SIGKILL between the relay dropping a stale-epoch envelope and the new key', () => {
  it('a message the daemon acknowledged under the old epoch, dropped by the relay, is on every device once the key arrives, nothing held', async () => {
    let relay: TestRelay = await spawnKaiRelay()
    cleanups.push(() => relay.cleanup())
    const track = (d: DaemonProcess) => (cleanups.push(() => d.cleanup()), d)
    let a = track(await spawnDaemon({ relayUrl: relay.url, label: 'owner a' }))
    const w = track(await spawnDaemon({ relayUrl: relay.url, label: 'writer w' }))
    let b = track(await spawnDaemon({ relayUrl: relay.url, label: 'writer b' }))

    const created = await a.api('POST', '/sessions', { agent_id: 'drop-kill', user_id: 'tester' })
    expect(created.status).toBe(201)
    const sessionId: string = created.json.session_id
    const path = `/session/${sessionId}`
    const link = async (from: DaemonProcess) => {
      const res = await from.api('POST', `${path}/handoff`, { session_id: sessionId, source_mode: 'headless', target_mode: 'headless', transfer_type: 'mirror' })
      expect(res.status, JSON.stringify(res.json)).toBe(200)
      return res.json.resume_url as string
    }
    const summary = async (d: DaemonProcess): Promise<Summary | undefined> => ((await d.api('GET', '/sessions')).json.sessions as Summary[]).find((s) => s.session_id === sessionId)
    const contents = async (d: DaemonProcess) => new Set(((await d.api('GET', path)).json.messages as Array<{ content: string }>).map((m) => m.content))
    const epochsOn = (d: DaemonProcess) => (JSON.parse(readFileSync(join(d.dataDir, 'keys', `${sessionId}.json`), 'utf8')) as { epochs: Array<{ epoch: number }> }).epochs.map((e) => e.epoch)
    const droppedFile = (d: DaemonProcess) => join(d.dataDir, 'sessions', `${sessionId}.dropped.json`)

    const resumed = await w.api('POST', `${path}/resume`, { resume_url: await link(a), label: 'writer w' })
    expect(resumed.status, JSON.stringify(resumed.json)).toBe(201)
    const wDevice = (await w.api('GET', `${path}/devices`)).json.devices.find((d: { this_device: boolean }) => d.this_device).device as string
    // b enrols through w's invite while a is stopped: a knows nothing of b when it removes w.
    await a.stop()
    const joined = await b.api('POST', `${path}/resume`, { resume_url: await link(w), label: 'writer b' })
    expect(joined.status, JSON.stringify(joined.json)).toBe(201)
    await eventually(() => summary(b), (s) => s?.sync === 'synced', 'b to be synced')
    await b.stop()
    await relay.stop()

    // Nobody reaches the relay: a removes w (epoch 1, granted to a alone), b writes under epoch 0.
    a = track(await a.restart())
    const removed = await a.api('DELETE', `${path}/devices/${wDevice}`)
    expect(removed.status, JSON.stringify(removed.json)).toBe(200)
    expect(epochsOn(a)).toEqual([0, 1])
    b = track(await b.restart())
    const written = await b.api('POST', `${path}/messages`, { role: 'user', content: 'sealed under the old epoch' })
    expect(written.status, JSON.stringify(written.json)).toBe(201)
    await b.stop()

    // The relay learns the removal from a, which dies before its grant to b is due.
    relay = await relay.restart()
    cleanups.push(() => relay.cleanup())
    await eventually(() => summary(a), (s) => s?.sync === 'synced', 'a to deliver the removal', 30_000)
    await a.process.kill9()

    // b sends its old-epoch envelope and the relay drops it. The relay tells
    // the others, not the sender, so b hears of the drop when it next
    // connects: it keeps the envelope then, and dies.
    const staleDrops = async () => Number(/^kai_relay_stale_dropped_total (\d+)/m.exec(await (await fetch(`http://127.0.0.1:${relay.port}/metrics`)).text())?.[1] ?? 0)
    const killed = (d: DaemonProcess) => d.output().some((l) => l.includes('test kill at dropped:kept'))
    let armed = track(await b.restart({ KAI_TEST_KILL_AT: 'dropped:kept' }))
    await eventually(staleDrops, (n) => n >= 1 || killed(armed), 'the relay to drop the old-epoch envelope')
    if (!killed(armed)) {
      await armed.stop()
      armed = track(await b.restart({ KAI_TEST_KILL_AT: 'dropped:kept' }))
    }
    await Promise.race([armed.process.exited, new Promise((r) => setTimeout(r, 30_000))])
    expect(killed(armed), armed.output().slice(-20).join('\n')).toBe(true)
    expect(epochsOn(b), 'b was killed before it held the new key').toEqual([0])
    expect(existsSync(droppedFile(b))).toBe(true)

    b = track(await b.restart())
    a = track(await a.restart())
    for (const d of [a, b]) {
      await eventually(() => contents(d), (c) => c.has('sealed under the old epoch'), `${d === a ? 'a' : 'b'} to show the message`, 60_000)
      await eventually(() => summary(d), (s) => s?.sync === 'synced' && s.held === 0, 'the session to be synced with nothing held', 30_000)
    }
    expect(epochsOn(b)).toEqual([0, 1])
    // Re-sealed and stored in a snapshot b sealed: kept no longer.
    await eventually(async () => existsSync(droppedFile(b)), (there) => !there, 'b to forget the dropped envelope')
    // The removed device never got it: the relay stored none of it under the key w holds.
    expect((await contents(w)).has('sealed under the old epoch')).toBe(false)
  }, 240_000)
})
