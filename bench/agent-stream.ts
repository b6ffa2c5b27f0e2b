// The agent's reply as another device sees it: a model streaming 50 tokens/s
// (the test model server, OpenAI wire format) to a real `kai agent` daemon,
// which streams the reply into the session; through a local kai-relay
// process to a second device, an engine in this process whose session doc
// is watched for each token. A token's time runs from the model server
// writing it to the other device's session showing it (both in this
// process, one clock). Baseline in the same run: the same tokens at the same
// rate as plain Y.Text inserts between two y-websocket clients through the
// stock relay (@y/websocket-server@0.1.1): no crypto, no batching, no store.
// Run: pnpm bench agent-stream
import * as Y from 'yjs'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import { agentsIn } from '@kai-sync/agent'
import { startTestModelServer } from '@kai-sync/agent/testing'
import { BoxKey, fromBase64Url, generateDeviceKey, grantKey } from '@kai-sync/crypto'
import { capabilityToParam, signCapability } from '@kai-sync/crypto/capability'
import { createSession } from '@kai-sync/engine'
import { connectRelay } from '@kai-sync/providers'
import { spawnDaemon, spawnKaiRelay, spawnStockRelay } from '@kai-sync/daemon/testing'
import { clock, fmt, percentile, table } from './lib'

const TOKENS_PER_SECOND = 50
const EVERY_MS = 1000 / TOKENS_PER_SECOND
const REPLIES = Number(process.env.BENCH_REPLIES ?? 3)
const TOKENS = Number(process.env.BENCH_TOKENS ?? 250)
const WARMUP_TOKENS = 50

const tokens = (n: number) => Array.from({ length: n }, (_, i) => `tok${i} `)

interface Run {
  /** Per token: written by the model server → in the other device's session (ms). */
  latencies: number[]
  /** Envelopes (or Yjs updates, for the baseline) the other device received per second of streaming. */
  perSecond: number
  /** The rate the tokens were really written at. */
  tokensPerSecond: number
}

/** Marks each token when a growing text first contains it; `text` is the concatenation of `words`. */
function tokenWatcher(words: string[], onToken: (index: number, at: number) => void) {
  const ends: number[] = []
  let total = 0
  for (const w of words) ends.push((total += w.length))
  let seen = 0
  return (length: number) => {
    const at = clock()
    while (seen < ends.length && ends[seen]! <= length) onToken(seen++, at)
    return seen === ends.length
  }
}

async function agentToDevice(): Promise<Run> {
  const model = await startTestModelServer({ everyMs: EVERY_MS })
  const relay = await spawnKaiRelay({ logLevel: 'info' })
  const agent = await spawnDaemon({
    relayUrl: relay.url,
    logLevel: 'info',
    label: 'bench agent',
    command: 'agent',
    env: { OPENAI_BASE_URL: model.baseUrl, OPENAI_API_KEY: 'bench-key-not-secret', KAI_AGENT_MODEL: 'bench-model' },
  })
  const links: Array<{ destroy(): void }> = []
  try {
    // The other device creates the session and enrolls the agent as a writer, as `kai device add` does.
    const device = await generateDeviceKey()
    const box = await BoxKey.generate()
    const engine = await createSession({ device, box, mode: 'headless', agentId: 'bench', userId: 'bench', label: 'device B' })
    const identity = (await agent.api('GET', '/device')).json as { device: string; box: string }
    const agentKey = fromBase64Url(identity.device)!
    const agentBox = fromBase64Url(identity.box)!
    await engine.setRole(agentKey, 'writer', { label: 'kai agent', box: agentBox })
    const grant = await grantKey({ sessionId: engine.sessionId, key: engine.keys.current, recipient: agentKey, recipientBox: agentBox, issuer: device })
    engine.wire.addKeyGrants([grant.bytes], null)
    await engine.flush()
    const link = await connectRelay(engine.wire, relay.url, async () => capabilityToParam(await signCapability({ room: engine.sessionId }, device)), engine, { name: 'relay' })
    links.push(link)
    await link.whenSynced(30_000)
    const joined = await agent.api('POST', `/session/${engine.sessionId}/join`, {})
    if (joined.status !== 200) throw new Error(`the agent's join answered ${joined.status}`)
    const doc = engine.session
    await until(() => agentsIn(doc, (d) => d === identity.device).length > 0, 60_000, 'the agent to announce itself in the session')

    /** One user message, answered by the agent with `words`; each token stamped on arrival here. */
    const turn = async (n: number, words: string[]) => {
      model.enqueue({ tokens: words, everyMs: EVERY_MS })
      const arrived: number[] = []
      const userId = `bench-user-${n}`
      let replyId: string | undefined
      const watch = tokenWatcher(words, (i, at) => (arrived[i] = at))
      let firstApplied = 0
      const done = new Promise<void>((resolve) => {
        const onChange = (change: { messages: ReadonlySet<string> }) => {
          for (const id of change.messages) {
            const m = doc.message(id)
            if (!m || m.metadata?.reply_to !== userId) continue
            if (replyId === undefined) {
              replyId = id
              firstApplied = engine.stats.applied
            }
            if (watch(m.content.length)) {
              doc.off('change', onChange)
              resolve()
            }
          }
        }
        doc.on('change', onChange)
      })
      doc.appendMessage({ id: userId, role: 'user', content: `question ${n}` })
      await withTimeout(done, 60_000 + words.length * EVERY_MS * 4, `the reply to ${userId}`)
      const request = model.requests.at(-1)!
      const seconds = (request.sentAt.at(-1)! - request.sentAt[0]!) / 1000
      return {
        latencies: request.sentAt.map((sent, i) => arrived[i]! - sent),
        envelopes: engine.stats.applied - firstApplied,
        seconds,
        tokens: request.sentAt.length,
      }
    }

    await turn(0, tokens(WARMUP_TOKENS))
    const latencies: number[] = []
    let envelopes = 0
    let seconds = 0
    let written = 0
    for (let r = 1; r <= REPLIES; r++) {
      const t = await turn(r, tokens(TOKENS))
      latencies.push(...t.latencies)
      envelopes += t.envelopes
      seconds += t.seconds
      written += t.tokens
    }
    engine.destroy()
    return { latencies, perSecond: envelopes / seconds, tokensPerSecond: written / seconds }
  } finally {
    for (const l of links) l.destroy()
    agent.cleanup()
    relay.cleanup()
    await model.close()
  }
}

/** The same tokens at the same rate as Y.Text inserts between two y-websocket clients through the stock relay. */
async function stockBaseline(): Promise<Run> {
  const relay = await spawnStockRelay()
  const a = new Y.Doc()
  const b = new Y.Doc()
  const options = { WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket, disableBc: true }
  const pa = new WebsocketProvider(relay.url, 'bench', a, options)
  const pb = new WebsocketProvider(relay.url, 'bench', b, options)
  try {
    await Promise.all([pa, pb].map((p) => until(() => p.synced, 30_000, 'a y-websocket client to sync')))
    const run = async (words: string[]) => {
      const sentAt: number[] = []
      const arrived: number[] = []
      const watch = tokenWatcher(words, (i, at) => (arrived[i] = at))
      const textB = b.getText('reply')
      const before = textB.length
      let updates = 0
      const onUpdate = () => updates++
      b.on('update', onUpdate)
      const done = new Promise<void>((resolve) => {
        const observer = () => {
          if (watch(textB.length - before)) {
            textB.unobserve(observer)
            resolve()
          }
        }
        textB.observe(observer)
      })
      const textA = a.getText('reply')
      const started = performance.now()
      for (let i = 0; i < words.length; i++) {
        await new Promise((r) => setTimeout(r, started + (i + 1) * EVERY_MS - performance.now()))
        textA.insert(textA.length, words[i]!)
        sentAt.push(clock())
      }
      await withTimeout(done, 30_000, 'the baseline tokens')
      b.off('update', onUpdate)
      const seconds = (sentAt.at(-1)! - sentAt[0]!) / 1000
      return { latencies: sentAt.map((s, i) => arrived[i]! - s), updates, seconds }
    }
    await run(tokens(WARMUP_TOKENS))
    const latencies: number[] = []
    let updates = 0
    let seconds = 0
    for (let r = 0; r < REPLIES; r++) {
      const t = await run(tokens(TOKENS))
      latencies.push(...t.latencies)
      updates += t.updates
      seconds += t.seconds
    }
    return { latencies, perSecond: updates / seconds, tokensPerSecond: (REPLIES * TOKENS) / seconds }
  } finally {
    pa.destroy()
    pb.destroy()
    relay.cleanup()
  }
}

async function until(ok: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)))
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

const baseline = await stockBaseline()
const agent = await agentToDevice()
const row = (name: string, r: Run, unit: string) => [name, fmt(r.tokensPerSecond, '/s'), fmt(percentile(r.latencies, 50), 'ms'), fmt(percentile(r.latencies, 99), 'ms'), `${fmt(r.perSecond, '/s')} ${unit}`]
table(
  `A reply at ${TOKENS_PER_SECOND} tokens/s, token written by the model → in another device's session (${REPLIES} replies of ${TOKENS} tokens after a ${WARMUP_TOKENS}-token warm-up)`,
  ['path', 'tokens', 'p50', 'p99', 'received'],
  [
    row('baseline: Y.Text insert → other y-websocket client, stock relay (no crypto, no batching)', baseline, 'updates'),
    row('model server → kai agent daemon → kai-relay → engine B\'s session', agent, 'envelopes'),
  ],
)
