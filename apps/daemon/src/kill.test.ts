import { isDeepStrictEqual } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import * as prng from 'lib0/prng'
import { eventually, spawnDaemon, spawnKaiRelay, type DaemonProcess, type TestRelay } from './testing'

// What a daemon acknowledged (a 2xx) is never lost, however it is killed.
// Two daemons share a session through a mirror handoff and one relay; in
// each cycle one of them answers a few writes and is killed with SIGKILL,
// then restarts on its data directory. The kill lands:
// - at random, 0–50 ms after the last answer (mid-seal, mid-store, mid-sync;
//   both compact every 12 envelopes, so now and then mid-compaction);
// - on purpose inside a compaction (KAI_TEST_KILL_AT, see test-kill.ts):
//   once the snapshot is sealed, and once it replaced the covered envelopes
//   in the wire doc but no store has it;
// - on purpose inside the daemon's own store compaction (every 20 appends
//   here, KAI_TEST_STORE_COMPACT_AFTER): once the merged update is stored and
//   the updates it replaces are not yet removed, and once they are removed;
//   the victim then restarts while the relay is down, and must hold from
//   its store alone every write it acknowledged;
// - on purpose during a handoff to a third daemon: the source once the relay
//   registered the token, the target once the relay burned it, once its
//   enrolment is made, once its key arrived, and the source killed at random
//   while the target accepts. The target then opens the link again: it must
//   work (the same device may retry), or the cycle fails.
// At the end both hold every acknowledged write (the third daemons' too),
// nothing is held back, and the roster has no device beyond those that
// completed a handoff.

const CYCLES = Number(process.env.KAI_KILL_CYCLES ?? 30)
const SEED = Number(process.env.KAI_KILL_SEED ?? 20261201)

type Kind = 'random' | 'compaction:sealed' | 'compaction:applied' | 'store-compaction:written' | 'store-compaction:replaced' | 'handoff:registered' | 'handoff:claimed' | 'handoff:enrolled' | 'handoff:keyed' | 'handoff:source'
/** Thirty cycles: 10 at random, 6 mid-compaction, 4 mid-store-compaction, 10 mid-handoff, interleaved so that a shorter run still has each kind; more cycles repeat the mix. */
const MIX: Kind[] = [
  'random', 'compaction:sealed', 'handoff:claimed', 'random', 'compaction:applied', 'handoff:enrolled', 'store-compaction:written', 'handoff:keyed', 'random', 'handoff:source',
  'store-compaction:replaced', 'handoff:registered', 'random', 'compaction:sealed', 'handoff:claimed', 'random', 'compaction:applied', 'handoff:enrolled', 'random', 'handoff:keyed',
  'random', 'handoff:source', 'store-compaction:written', 'handoff:registered', 'random', 'compaction:sealed', 'random', 'compaction:applied', 'store-compaction:replaced', 'random',
]
/** Every daemon of the test: the store compacts every 20 appends, so random kills land in one now and then too. */
const ENV = { KAI_TEST_STORE_COMPACT_AFTER: '20' }

const cleanups: Array<() => void> = []
afterAll(() => {
  for (const c of cleanups.reverse()) c()
})

interface SessionState {
  sync: string
  held?: number
  messages?: number
}

interface KindCount {
  cycles: number
  /** How often the armed kill point was reached (the daemon said so before it died). */
  landed: number
  acknowledged: number
  /** Handoffs whose target ended up holding the session. */
  completed: number
  /** Store compaction: acknowledged writes the restarted victim lacked while the relay was down. */
  lostLocally: number
}

describe('SIGKILL at random moments, mid-compaction and mid-handoff', () => {
  it(`${CYCLES} kill cycles of two daemons sharing a session: nothing acknowledged is lost, nothing held, no handoff half-done`, async () => {
    const gen = prng.create(SEED)
    const plan = Array.from({ length: CYCLES }, (_, i) => MIX[i % MIX.length]!)
    for (let i = plan.length - 1; i > 0; i--) {
      const j = prng.uint32(gen, 0, i)
      ;[plan[i], plan[j]] = [plan[j]!, plan[i]!]
    }
    let relay: TestRelay = await spawnKaiRelay()
    cleanups.push(() => relay.cleanup())
    const daemonArgs = ['--compact-after', '12']
    let [a, b] = await Promise.all([
      spawnDaemon({ relayUrl: relay.url, label: 'daemon a', args: daemonArgs, env: ENV }),
      spawnDaemon({ relayUrl: relay.url, label: 'daemon b', args: daemonArgs, env: ENV }),
    ])
    cleanups.push(() => a.cleanup(), () => b.cleanup())
    const created = await a.api('POST', '/sessions', { agent_id: 'kill-test', user_id: 'tester' })
    expect(created.status).toBe(201)
    const sessionId: string = created.json.session_id
    const path = `/session/${sessionId}`
    const linkFrom = async (d: DaemonProcess): Promise<string> => {
      const res = await d.api('POST', `${path}/handoff`, { session_id: sessionId, source_mode: 'headless', target_mode: 'headless', transfer_type: 'mirror' })
      expect(res.status, JSON.stringify(res.json)).toBe(200)
      return res.json.resume_url
    }
    const resume = (d: DaemonProcess, link: string, label: string) => tryApi(d, 'POST', `${path}/resume`, { resume_url: link, label })
    expect((await resume(b, await linkFrom(a), 'daemon b'))?.status).toBe(201)

    const acknowledged = new Set<string>()
    const configs = new Map<string, number>()
    const counts = new Map<Kind, KindCount>()
    let writes = 0
    let thirds = 0
    /** Posts a message; a 201 makes it acknowledged. A daemon that died on the way answers nothing. */
    const write = async (d: DaemonProcess, content: string): Promise<boolean> => {
      writes++
      const res = await tryApi(d, 'POST', `${path}/messages`, { role: 'user', content })
      if (res?.status !== 201) return false
      acknowledged.add(content)
      return true
    }
    const read = (d: DaemonProcess) => async () => (await d.api('GET', path)).json
    const holdsAll = (record: { messages?: Array<{ content: string }>; config?: Record<string, unknown> }) => {
      const contents = new Set(record.messages?.map((m) => m.content))
      return [...acknowledged].every((c) => contents.has(c)) && [...configs].every(([f, v]) => record.config?.[f] === v)
    }
    const summary = async (d: DaemonProcess): Promise<SessionState> => (await d.api('GET', '/sessions')).json.sessions.find((s: { session_id: string }) => s.session_id === sessionId)
    const killedAt = (d: { output(): string[] } | string, point: string) => (typeof d === 'string' ? d.split('\n') : d.output()).some((l) => l.includes(`test kill at ${point}`))
    /** A daemon armed to kill itself at `point`; null if it did so while starting (a compaction at open). */
    const armed = async (d: DaemonProcess, point: string): Promise<DaemonProcess | null> => {
      try {
        const restarted = await d.restart({ ...ENV, KAI_TEST_KILL_AT: point })
        cleanups.push(() => restarted.cleanup())
        return restarted
      } catch (e) {
        if (killedAt(String(e), point)) return null
        throw e
      }
    }
    const restart = async (d: DaemonProcess) => {
      const restarted = await d.restart(ENV)
      cleanups.push(() => restarted.cleanup())
      return restarted
    }

    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const kind = plan[cycle]!
      const count = counts.get(kind) ?? { cycles: 0, landed: 0, acknowledged: 0, completed: 0, lostLocally: 0 }
      counts.set(kind, count)
      count.cycles++
      const before = acknowledged.size
      const victimIsA = prng.bool(gen)
      let victim = victimIsA ? a : b
      const tag = `cycle ${cycle} (${kind}) on ${victimIsA ? 'a' : 'b'}`

      if (kind === 'random') {
        const n = prng.int32(gen, 1, 3)
        for (let i = 0; i < n; i++) await write(victim, `${tag} #${i}`)
        if (prng.real53(gen) < 0.3) {
          const field = `knob_${victimIsA ? 'a' : 'b'}`
          const res = await victim.api('PATCH', `${path}/config`, { [field]: cycle })
          writes++
          if (res.status === 200) configs.set(field, cycle)
        }
        await new Promise((r) => setTimeout(r, prng.int32(gen, 0, 50)))
        await victim.process.kill9()
        count.landed++
        victim = await restart(victim)
      } else if (kind.startsWith('compaction:') || kind.startsWith('store-compaction:')) {
        // Restarted armed, the victim writes until its first compaction kills it.
        await victim.process.kill9()
        const live = await armed(victim, kind)
        const mine: string[] = []
        if (live) {
          let dead = false
          void live.process.exited.then(() => (dead = true))
          for (let i = 0; i < 24 && !dead; i++) if (await write(live, `${tag} #${i}`)) mine.push(`${tag} #${i}`)
          await Promise.race([live.process.exited, new Promise((r) => setTimeout(r, 15_000))])
          if (killedAt(live, kind)) count.landed++
          else throw new Error(`${tag}: no compaction ran within 24 writes and 15 s`)
          await live.process.kill9()
        } else count.landed++
        if (kind.startsWith('store-compaction:')) {
          // The store alone must hold what it acknowledged: with the relay
          // down the restarted victim has nothing else to fill it from.
          await relay.stop()
          victim = await restart(victim)
          // A store that lost the whole session leaves it unknown (404): it then holds nothing.
          const record = await victim.api('GET', path)
          const held = new Set(((record.json.messages ?? []) as Array<{ content: string }>).map((m) => m.content))
          const missing = mine.filter((c) => !held.has(c))
          count.lostLocally += missing.length
          relay = await relay.restart()
          cleanups.push(() => relay.cleanup())
          expect(missing, `${tag}: acknowledged, then not in the store after the kill`).toEqual([])
        } else victim = await restart(victim)
      } else if (kind === 'handoff:registered') {
        // The source dies once the relay holds the token, before the link is printed: nobody can use it.
        await write(victim, `${tag} before`)
        await victim.process.kill9()
        const live = await armed(victim, kind)
        if (!live) throw new Error(`${tag}: the armed daemon died while starting`)
        const res = await tryApi(live, 'POST', `${path}/handoff`, { session_id: sessionId, source_mode: 'headless', target_mode: 'headless', transfer_type: 'mirror' })
        await live.process.exited
        if (res === null && killedAt(live, kind)) count.landed++
        else throw new Error(`${tag}: the source did not die once the token was registered (answered ${res?.status})`)
        victim = await restart(victim)
      } else {
        // A third daemon accepts a handoff from the victim; it or the source is killed on the way.
        const link = await linkFrom(victim)
        await write(victim, `${tag} before`)
        const label = `third ${++thirds}`
        const targetKill = kind !== 'handoff:source'
        let third = targetKill
          ? await spawnDaemon({ relayUrl: relay.url, label, args: daemonArgs, env: { ...ENV, KAI_TEST_KILL_AT: kind } })
          : await spawnDaemon({ relayUrl: relay.url, label, args: daemonArgs, env: ENV })
        cleanups.push(() => third.cleanup())
        if (targetKill) {
          const res = await resume(third, link, label)
          await third.process.exited
          if (res === null && killedAt(third, kind)) count.landed++
          else throw new Error(`${tag}: the target did not die at ${kind} (answered ${res?.status} ${JSON.stringify(res?.json)})`)
          third = await restart(third)
          // Opening the link again on the same device must finish the handoff.
          const retry = await resume(third, link, label)
          expect(retry?.status, `${tag}: retry ${JSON.stringify(retry?.json)}`).toBe(201)
        } else {
          const accepting = resume(third, link, label)
          await new Promise((r) => setTimeout(r, prng.int32(gen, 0, 600)))
          await victim.process.kill9()
          count.landed++
          victim = await restart(victim)
          // The other writer grants the keys when the source cannot.
          const res = await accepting
          expect(res?.status, `${tag}: resume while the source died ${JSON.stringify(res?.json)}`).toBe(201)
        }
        count.completed++
        await write(third, `${tag} written by ${label}`)
        await eventually(read(third), holdsAll, `${label} to hold every acknowledged write`, 60_000)
        await third.stop()
      }
      count.acknowledged += acknowledged.size - before
      if (victimIsA) a = victim
      else b = victim
    }

    const lost = async (d: DaemonProcess) => {
      const contents = new Set(((await read(d)()).messages as Array<{ content: string }>).map((m) => m.content))
      return [...acknowledged].filter((c) => !contents.has(c))
    }
    const handoffs = [...counts].filter(([k]) => k.startsWith('handoff:')).reduce((n, [, c]) => n + c.completed, 0)
    try {
      await Promise.all([eventually(read(a), holdsAll, 'daemon a to hold every acknowledged write', 60_000), eventually(read(b), holdsAll, 'daemon b to hold every acknowledged write', 60_000)])
      // Converged: the same messages on both, and both synced with nothing held. A write the last kill cut
      // off before its answer may still be on its way from the victim's store to the other daemon, so wait.
      const both = () => Promise.all([read(a)(), read(b)()])
      const [ra, rb] = await eventually(both, ([x, y]) => isDeepStrictEqual(x.messages, y.messages) && isDeepStrictEqual(x.config, y.config), 'a and b to show the same session', 30_000).catch(both)
      expect(ra.messages).toEqual(rb.messages)
      expect(ra.config).toEqual(rb.config)
      for (const d of [a, b]) await eventually(() => summary(d), (s) => s.sync === 'synced' && s.held === 0, 'the session to be synced with nothing held', 30_000)
      // No handoff left a device half-enrolled: the roster holds a, b and each completed target, no more.
      const { devices } = (await a.api('GET', `${path}/devices`)).json as { devices: Array<{ role: string }> }
      expect(devices.filter((d) => d.role !== 'removed')).toHaveLength(2 + handoffs)
    } finally {
      const [la, lb] = await Promise.all([lost(a), lost(b)])
      const [sa, sb] = await Promise.all([summary(a), summary(b)])
      console.log(`kill fuzz (seed ${SEED}): ${CYCLES} cycles, ${writes} writes, ${acknowledged.size} messages and ${configs.size} config fields acknowledged; lost on a ${la.length}, on b ${lb.length}; held on a ${sa.held}, on b ${sb.held}; ${handoffs} handoffs completed`)
      for (const [kind, c] of counts) console.log(`  ${kind}: ${c.cycles} cycles, ${kind === 'random' ? `${c.landed} killed 0–50 ms after the last answer` : `the kill landed there ${c.landed} times`}, ${c.acknowledged} messages acknowledged${kind.startsWith('handoff:') && kind !== 'handoff:registered' ? `, ${c.completed} handoffs completed` : ''}${kind.startsWith('store-compaction:') ? `, ${c.lostLocally} missing from the victim's store restarted without the relay` : ''}`)
    }
  }, 600_000)
})

/** A request that yields null instead of throwing when the daemon dies before it answers. */
async function tryApi(d: DaemonProcess, method: string, path: string, body?: unknown): Promise<{ status: number; json: any } | null> {
  try {
    return await d.api(method, path, body)
  } catch {
    return null
  }
}
