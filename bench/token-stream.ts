// Envelopes produced by a reply streamed at 100 tokens per second, in real
// time, for several batch windows. Without batching it would be one
// envelope per token: 100 per second.
import { WebCryptoDeviceKey } from '@kai-sync/crypto'
import { createSession } from '@kai-sync/engine'
import { fmt, goal, table } from './lib'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const TOKENS_PER_SECOND = 100

async function stream(batchWindowMs: number | undefined): Promise<{ perSecond: number; tokens: number }> {
  const engine = await createSession({ device: await WebCryptoDeviceKey.generate(), mode: 'desktop', agentId: 'a', userId: 'u', compactAfter: null, ...(batchWindowMs ? { batchWindowMs } : {}) })
  engine.session.startStream({ id: 'reply', role: 'assistant' })
  await engine.flush()
  const before = engine.stats.sealed
  let tokens = 0
  const started = performance.now()
  await new Promise<void>((done) => {
    const timer = setInterval(() => {
      // Catch up on timer lateness so the rate really is 100/s.
      const due = Math.floor(((performance.now() - started) / 1000) * TOKENS_PER_SECOND)
      while (tokens < due) engine.session.streamText('reply', `tok${tokens++} `)
      if (performance.now() - started >= SECONDS * 1000) {
        clearInterval(timer)
        done()
      }
    }, 1000 / TOKENS_PER_SECOND)
  })
  await engine.flush()
  const seconds = (performance.now() - started) / 1000
  const perSecond = (engine.stats.sealed - before) / seconds
  engine.destroy()
  return { perSecond, tokens }
}

const rows: string[][] = [['no batching (one envelope per token)', fmt(TOKENS_PER_SECOND, '/s')]]
let defaultRate = Infinity
for (const window of [undefined, 30, 100]) {
  const { perSecond, tokens } = await stream(window)
  if (window === undefined) defaultRate = perSecond
  rows.push([`batch window ${window ?? 60} ms${window === undefined ? ' (default)' : ''}, ${tokens} tokens`, fmt(perSecond, '/s')])
}
table(`Envelopes sealed while streaming ${TOKENS_PER_SECOND} tokens/s for ${SECONDS} s`, ['engine', 'envelopes'], rows)
goal('at most 20 envelopes per second at the default window', defaultRate <= 20, fmt(defaultRate, '/s'))
