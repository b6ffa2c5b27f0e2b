// Daemon to daemon: a message POSTed on daemon A until daemon B shows it
// (on B's event stream, and in a GET on B), through a local kai-relay
// process, every part a real process on loopback. Beside it, in the same
// run and through the same relay, a plain engine-to-engine baseline: two
// SyncEngines in this process linked by connectRelay, no HTTP, no store.
// Run: pnpm bench daemon
import { createSession, SyncEngine, WireDoc } from '@kai-sync/engine'
import { connectRelay } from '@kai-sync/providers'
import { BoxKey, generateDeviceKey, grantKey, SessionKeyring } from '@kai-sync/crypto'
import { capabilityToParam, signCapability } from '@kai-sync/crypto/capability'
import { kai, spawnDaemon, spawnKaiRelay, type DaemonProcess } from '@kai-sync/daemon/testing'
import { clock, fmt, goal, percentile, table } from './lib'

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 150)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 30)
// Longer than the engine's batch window, so each message is a lone change.
const SPACING_MS = 100
const GOAL_P50_MS = 8

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Sample {
  /** A's POST answered (sealed and stored on A). */
  posted: number
  /** B's event stream delivered the message. */
  event: number
  /** A range read on B (GET /messages after the last cursor), sent when the event arrived, answered with the message. */
  range: number
  /** The whole record (GET /session/:id) instead, sent when the event arrived. */
  whole: number
}

/** Follows B's event stream; resolves each awaited message id when its `message` event arrives. */
function follow(daemon: DaemonProcess, sessionId: string, signal: AbortSignal) {
  const waiting = new Map<string, (at: number) => void>()
  const arrived = new Map<string, number>()
  const ready = (async () => {
    const response = await fetch(`${daemon.url}/session/${sessionId}/events`, { headers: { authorization: `Bearer ${daemon.token}` }, signal })
    const decoder = new TextDecoder()
    let buffer = ''
    void (async () => {
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          const at = clock()
          buffer += decoder.decode(chunk, { stream: true })
          let end
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            const data = block.split('\n').find((l) => l.startsWith('data: '))
            if (!data || !block.includes('event: message')) continue
            const id = (JSON.parse(data.slice(6)) as { id?: string }).id
            if (!id || arrived.has(id)) continue
            arrived.set(id, at)
            waiting.get(id)?.(at)
          }
        }
      } catch {
        // aborted at the end
      }
    })()
  })()
  return {
    ready,
    arrival: (id: string) =>
      new Promise<number>((resolve) => {
        const at = arrived.get(id)
        if (at !== undefined) resolve(at)
        else waiting.set(id, resolve)
      }),
  }
}

async function daemonToDaemon(relayUrl: string): Promise<Sample[]> {
  const [a, b] = await Promise.all([spawnDaemon({ relayUrl, label: 'bench A', logLevel: 'info' }), spawnDaemon({ relayUrl, label: 'bench B', logLevel: 'info' })])
  const abort = new AbortController()
  try {
    const sessionId = (await kai(a, 'create', '--agent', 'bench', '--user', 'bench')).trim()
    const printed = await kai(a, 'handoff', sessionId, '--to', 'headless', '--type', 'mirror')
    await kai(b, 'resume', printed.split('\n').find((l) => l.startsWith('kai://resume#kai='))!, '--label', 'bench B')
    const events = follow(b, sessionId, abort.signal)
    await events.ready
    const samples: Sample[] = []
    let cursor: string | null = null
    for (let i = 0; i < WARMUP + SAMPLES; i++) {
      const id = `bench-${i}`
      const arrival = events.arrival(id)
      const sent = clock()
      const posted = await a.api('POST', `/session/${sessionId}/messages`, { id, role: 'user', content: `message ${i} ${'x'.repeat(200)}` })
      const postedAt = clock()
      if (posted.status !== 201) throw new Error(`POST answered ${posted.status}`)
      const eventAt = await arrival
      const page = await b.api('GET', `/session/${sessionId}/messages${cursor ? `?after=${encodeURIComponent(cursor)}` : ''}`)
      const rangeAt = clock()
      if (!page.json.messages.some((m: { id: string }) => m.id === id)) throw new Error('a range read on B lacks the message its event stream announced')
      cursor = page.json.next
      const wholeFrom = clock()
      const got = await b.api('GET', `/session/${sessionId}`)
      const wholeAt = clock()
      if (!got.json.messages.some((m: { id: string }) => m.id === id)) throw new Error('GET on B lacks the message its event stream announced')
      if (i >= WARMUP) samples.push({ posted: postedAt - sent, event: eventAt - sent, range: rangeAt - sent, whole: eventAt - sent + (wholeAt - wholeFrom) })
      await sleep(SPACING_MS)
    }
    return samples
  } finally {
    abort.abort()
    a.cleanup()
    b.cleanup()
  }
}

/** Two engines in this process, one session, through the same relay: seal, socket, relay, socket, open, apply. */
async function engineToEngine(relayUrl: string): Promise<number[]> {
  const deviceA = await generateDeviceKey()
  const deviceB = await generateDeviceKey()
  const boxB = await BoxKey.generate()
  const a = await createSession({ device: deviceA, box: await BoxKey.generate(), mode: 'headless', agentId: 'bench', userId: 'bench', label: 'engine A' })
  await a.setRole(deviceB.publicKey, 'writer', { label: 'engine B', box: boxB.publicKey })
  const grant = await grantKey({ sessionId: a.sessionId, key: a.keys.current, recipient: deviceB.publicKey, recipientBox: boxB.publicKey, issuer: deviceA })
  a.wire.addKeyGrants([grant.bytes], null)
  await a.flush()
  const sign = (device: typeof deviceA) => async () => capabilityToParam(await signCapability({ room: a.sessionId }, device))
  const linkA = await connectRelay(a.wire, relayUrl, sign(deviceA), a, { name: 'relay' })
  await linkA.whenSynced(20_000)
  const wireB = new WireDoc()
  const b = await SyncEngine.open({ sessionId: a.sessionId, wire: wireB, device: deviceB, box: boxB, keys: new SessionKeyring([]), mode: 'headless' })
  const linkB = await connectRelay(wireB, relayUrl, sign(deviceB), b, { name: 'relay', retryRefused: true })
  await linkB.whenSynced(20_000)
  const arrived = new Map<string, (at: number) => void>()
  b.session.on('change', (change) => {
    const at = clock()
    for (const id of change.messages) arrived.get(id)?.(at)
  })
  const out: number[] = []
  try {
    for (let i = 0; i < WARMUP + SAMPLES; i++) {
      const id = `engine-${i}`
      const arrival = new Promise<number>((resolve) => arrived.set(id, resolve))
      const sent = clock()
      a.session.appendMessage({ id, role: 'user', content: `message ${i} ${'x'.repeat(200)}` })
      const at = await arrival
      if (i >= WARMUP) out.push(at - sent)
      await sleep(SPACING_MS)
    }
  } finally {
    linkA.destroy()
    linkB.destroy()
    a.destroy()
    b.destroy()
  }
  return out
}

const relay = await spawnKaiRelay({ logLevel: 'info' })
try {
  const engines = await engineToEngine(relay.url)
  const daemons = await daemonToDaemon(relay.url)
  const row = (name: string, xs: number[]) => [name, fmt(percentile(xs, 50), 'ms'), fmt(percentile(xs, 90), 'ms'), fmt(percentile(xs, 99), 'ms')]
  table(
    `Daemon to daemon through a local kai-relay (${SAMPLES} messages after ${WARMUP} warm-up, ${SPACING_MS} ms apart)`,
    ['path', 'p50', 'p90', 'p99'],
    [
      row('baseline: engine A append → in engine B\'s session (same relay, no HTTP, no store)', engines),
      row('POST on A answered (sealed, stored on A)', daemons.map((s) => s.posted)),
      row('POST on A → message event on B\'s stream', daemons.map((s) => s.event)),
      row('POST on A → a range read on B shows it (GET /session/:id/messages?after=)', daemons.map((s) => s.range)),
      row('POST on A → the whole record on B shows it (GET /session/:id)', daemons.map((s) => s.whole)),
    ],
  )
  const p50 = percentile(daemons.map((s) => s.range), 50)
  goal(`daemon to daemon p50 at most ${GOAL_P50_MS} ms`, p50 <= GOAL_P50_MS, `${fmt(p50, 'ms')} POST on A → range read on B, engine baseline ${fmt(percentile(engines, 50), 'ms')}`)
} finally {
  relay.cleanup()
}
