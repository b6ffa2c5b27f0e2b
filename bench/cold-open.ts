// Cold open of a 10,000-message session from its compacted wire doc (load
// the ciphertext, verify the roster and the snapshot, decrypt, apply, index)
// against a plain Y.applyUpdate of the same session state.
import * as Y from 'yjs'
import { SessionKeyring, WebCryptoDeviceKey } from '@kai-sync/crypto'
import { SessionDoc } from '@kai-sync/model'
import { SyncEngine, WireDoc, createSession } from '@kai-sync/engine'
import { fmt, goal, median, now, table } from './lib'

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 10_000)
const RUNS = 7

const device = await WebCryptoDeviceKey.generate()
const writer = await createSession({ device, mode: 'desktop', agentId: 'a', userId: 'u', compactAfter: null, batchWindowMs: 60_000 })
for (let i = 0; i < MESSAGES; i++) {
  writer.session.appendMessage({ id: `m${i}`, role: i % 2 ? 'user' : 'assistant', content: `${i} ${'lorem ipsum dolor sit amet '.repeat(18)}` })
  if (i % 100 === 99) await writer.flush()
}
await writer.compact()
const wireState = Y.encodeStateAsUpdate(writer.wire.doc)
const plainState = Y.encodeStateAsUpdate(writer.session.doc)
const keys = new SessionKeyring([writer.keys.current])

async function openEngine(): Promise<number> {
  const t = now()
  const wire = new WireDoc()
  Y.applyUpdate(wire.doc, wireState)
  const engine = await SyncEngine.open({ sessionId: writer.sessionId, wire, device, keys, mode: 'tab', compactAfter: null })
  const ms = now() - t
  if (engine.session.messageCount !== MESSAGES) throw new Error(`opened ${engine.session.messageCount} messages`)
  engine.destroy()
  return ms
}

function openPlain(): number {
  const t = now()
  const doc = new Y.Doc()
  Y.applyUpdate(doc, plainState)
  return now() - t
}

function openPlainIndexed(): number {
  const t = now()
  const doc = new Y.Doc()
  Y.applyUpdate(doc, plainState)
  const session = new SessionDoc({ device: 'x', mode: 'tab', doc })
  const ms = now() - t
  if (session.messageCount !== MESSAGES) throw new Error('index')
  return ms
}

const engine: number[] = []
const plain: number[] = []
const indexed: number[] = []
await openEngine()
openPlain()
for (let r = 0; r < RUNS; r++) {
  plain.push(openPlain())
  indexed.push(openPlainIndexed())
  engine.push(await openEngine())
}
const base = median(plain)
table(`Cold open of a ${MESSAGES.toLocaleString('en-US')}-message session (median of ${RUNS})`, ['what', 'time', 'vs plain'], [
  [`plain Y.applyUpdate of the session state (${fmt(plainState.length / 1e6, 'MB')})`, fmt(base, 'ms'), '1.00x'],
  ['the same, then a SessionDoc indexes it', fmt(median(indexed), 'ms'), fmt(median(indexed) / base, 'x')],
  [`engine from the compacted wire doc (${fmt(wireState.length / 1e6, 'MB')})`, fmt(median(engine), 'ms'), fmt(median(engine) / base, 'x')],
])
goal('cold open at most 1.3x plain Y.applyUpdate', median(engine) / base <= 1.3, `${fmt(median(engine) / base, 'x')}`)
writer.destroy()
