// Per-message cost as the history grows to 100,000 messages: a local
// append, and applying one remote append, each with its observer reading
// what changed. Ours (a Y.Map keyed by id, an index ordered by (timestamp,
// id), observers that read only the changed keys) against the obvious
// structure: one Y.Array written by two devices, appended with
// insert(length), observed through event.changes.delta.
import * as Y from 'yjs'
import { SessionDoc } from '@kai-sync/model'
import { fmt, median, table } from './lib'

const SIZES = (process.env.BENCH_SIZES ?? '1000,10000,100000').split(',').map(Number)
const SAMPLES = 100
const text = 'lorem ipsum dolor sit amet '.repeat(18) // about 500 B

function usPerOp(fn: (i: number) => void, samples = SAMPLES): number {
  const times: number[] = []
  for (let i = 0; i < samples; i++) {
    const t = performance.now()
    fn(i)
    times.push((performance.now() - t) * 1000)
  }
  return median(times)
}

/** Two devices' SessionDocs holding `n` messages written by both. */
function ours(n: number) {
  const a = new SessionDoc({ device: 'a', mode: 'desktop' })
  const b = new SessionDoc({ device: 'b', mode: 'mobile' })
  a.transact(() => {
    for (let i = 0; i < n / 2; i++) a.appendMessage({ id: `a${i}`, role: 'user', content: text, timestamp: 2 * i })
  })
  b.transact(() => {
    for (let i = 0; i < n / 2; i++) b.appendMessage({ id: `b${i}`, role: 'assistant', content: text, timestamp: 2 * i + 1 })
  })
  Y.applyUpdate(a.doc, Y.encodeStateAsUpdate(b.doc))
  Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc))
  let seen = 0
  b.on('change', (c) => (seen += c.messages.size))
  const updates: Uint8Array[] = []
  a.doc.on('update', (u: Uint8Array) => updates.push(u))
  const local = usPerOp((i) => a.appendMessage({ id: `new${i}`, role: 'user', content: text, timestamp: n + i }))
  const remote = usPerOp((i) => Y.applyUpdate(b.doc, updates[i]!))
  if (seen !== SAMPLES || b.messageIds()[b.messageCount - 1] !== `new${SAMPLES - 1}`) throw new Error('the observer missed appends')
  return { local, remote }
}

/** The same with one long Y.Array of Y.Maps. */
function yArray(n: number) {
  const a = new Y.Doc()
  const b = new Y.Doc()
  const make = (i: number, who: string) => {
    const m = new Y.Map<unknown>()
    m.set('id', `${who}${i}`)
    m.set('ts', i)
    m.set('text', text)
    return m
  }
  // Built in bulk (one insert each), then interleaved writes by both.
  a.getArray('history').insert(0, Array.from({ length: n / 2 }, (_, i) => make(i, 'a')))
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
  b.getArray('history').insert(n / 2, Array.from({ length: n / 2 }, (_, i) => make(i, 'b')))
  Y.applyUpdate(a, Y.encodeStateAsUpdate(b))
  let seen = 0
  b.getArray('history').observe((e) => (seen += e.changes.delta.length))
  const updates: Uint8Array[] = []
  a.on('update', (u: Uint8Array) => updates.push(u))
  const arr = a.getArray('history')
  const local = usPerOp((i) => arr.insert(arr.length, [make(n + i, 'a')]))
  const remote = usPerOp((i) => Y.applyUpdate(b, updates[i]!))
  if (seen < SAMPLES) throw new Error('the observer missed appends')
  return { local, remote }
}

// Warm the JIT up, so the first size is not charged for compiling.
ours(1000)
yArray(1000)
const rows: string[][] = []
for (const n of SIZES) {
  const o = ours(n)
  const y = yArray(n)
  rows.push([n.toLocaleString('en-US'), fmt(o.local, 'µs'), fmt(o.remote, 'µs'), fmt(y.local, 'µs'), fmt(y.remote, 'µs')])
}
table(`Per-message cost by history size (median of ${SAMPLES} appends, ~500 B each, observers on)`, [
  'messages',
  'ours: local append',
  'ours: remote apply',
  'Y.Array: local append',
  'Y.Array: remote apply',
], rows)
