import { afterAll, describe, expect, it } from 'vitest'
import * as prng from 'lib0/prng'
import { eventually, kai, spawnDaemon, spawnKaiRelay, type DaemonProcess, type TestRelay } from './testing'

// What a daemon acknowledged (a 2xx) is never lost, however it is killed.
// Two daemons share a session through a mirror handoff and one relay; in
// each cycle one of them answers a few writes and is killed with SIGKILL
// 0–50 ms after its last answer (mid-seal, mid-store, mid-sync, now and
// then mid-compaction: both compact every few envelopes), then restarts on
// its data directory. At the end both must hold every acknowledged write
// and nothing may be held back.

const CYCLES = Number(process.env.KAI_KILL_CYCLES ?? 30)
const SEED = Number(process.env.KAI_KILL_SEED ?? 20261201)

const cleanups: Array<() => void> = []
afterAll(() => {
  for (const c of cleanups.reverse()) c()
})

interface SessionState {
  sync: string
  held?: number
  messages?: number
}

describe('SIGKILL at random moments', () => {
  it(`${CYCLES} kill cycles of two daemons sharing a session: nothing acknowledged is lost, nothing held`, async () => {
    const gen = prng.create(SEED)
    const relay: TestRelay = await spawnKaiRelay()
    cleanups.push(() => relay.cleanup())
    const daemonArgs = ['--compact-after', '12']
    let [a, b] = await Promise.all([
      spawnDaemon({ relayUrl: relay.url, label: 'daemon a', args: daemonArgs }),
      spawnDaemon({ relayUrl: relay.url, label: 'daemon b', args: daemonArgs }),
    ])
    cleanups.push(() => a.cleanup(), () => b.cleanup())
    const sessionId = (await kai(a, 'create')).trim()
    const printed = await kai(a, 'handoff', sessionId, '--to', 'headless', '--type', 'mirror')
    const link = printed.split('\n').find((l) => l.startsWith('kai://resume#kai='))!
    await kai(b, 'resume', link, '--label', 'daemon b')

    const acknowledged = new Set<string>()
    const configs = new Map<string, number>()
    let writes = 0
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const victimIsA = prng.bool(gen)
      const victim = victimIsA ? a : b
      const n = prng.int32(gen, 1, 3)
      for (let i = 0; i < n; i++) {
        const content = `cycle ${cycle} #${i} on ${victimIsA ? 'a' : 'b'}`
        const res = await victim.api('POST', `/session/${sessionId}/messages`, { role: 'user', content })
        writes++
        if (res.status === 201) acknowledged.add(content)
      }
      if (prng.real53(gen) < 0.3) {
        const field = `knob_${victimIsA ? 'a' : 'b'}`
        const res = await victim.api('PATCH', `/session/${sessionId}/config`, { [field]: cycle })
        writes++
        if (res.status === 200) configs.set(field, cycle)
      }
      await new Promise((r) => setTimeout(r, prng.int32(gen, 0, 50)))
      await victim.process.kill9()
      const restarted = await victim.restart()
      cleanups.push(() => restarted.cleanup())
      if (victimIsA) a = restarted
      else b = restarted
    }

    const holdsAll = (record: { messages?: Array<{ content: string }>; config?: Record<string, unknown> }) => {
      const contents = new Set(record.messages?.map((m) => m.content))
      return [...acknowledged].every((c) => contents.has(c)) && [...configs].every(([f, v]) => record.config?.[f] === v)
    }
    const read = (d: DaemonProcess) => async () => (await d.api('GET', `/session/${sessionId}`)).json
    const summary = async (d: DaemonProcess): Promise<SessionState> => (await d.api('GET', '/sessions')).json.sessions.find((s: { session_id: string }) => s.session_id === sessionId)
    const lost = async (d: DaemonProcess) => {
      const contents = new Set(((await read(d)()).messages as Array<{ content: string }>).map((m) => m.content))
      return [...acknowledged].filter((c) => !contents.has(c))
    }
    try {
      await Promise.all([eventually(read(a), holdsAll, 'daemon a to hold every acknowledged write', 60_000), eventually(read(b), holdsAll, 'daemon b to hold every acknowledged write', 60_000)])
      // Converged: the same messages on both, and both synced with nothing held.
      const [ra, rb] = await Promise.all([read(a)(), read(b)()])
      expect(ra.messages).toEqual(rb.messages)
      expect(ra.config).toEqual(rb.config)
      for (const d of [a, b]) await eventually(() => summary(d), (s) => s.sync === 'synced' && s.held === 0, 'the session to be synced with nothing held', 30_000)
    } finally {
      const [la, lb] = await Promise.all([lost(a), lost(b)])
      const [sa, sb] = await Promise.all([summary(a), summary(b)])
      console.log(`kill fuzz (seed ${SEED}): ${CYCLES} cycles, ${writes} writes, ${acknowledged.size} messages and ${configs.size} config fields acknowledged; lost on a ${la.length}, on b ${lb.length}; held on a ${sa.held}, on b ${sb.held}`)
    }
  }, 600_000)
})
