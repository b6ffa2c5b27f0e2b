import * as Y from 'yjs'
import { z } from 'zod'
import { describe, expect, it } from 'vitest'
import { SessionDoc } from './session-doc'
import { importRecord, toRecord } from './record'
import { MessageSchema } from './schemas'
import { SessionRecordSchema } from './exchange-schemas'

// How a reply ends (stopped, interrupted, error) and the stop and retry
// requests any device may write: read the same on every replica, and read
// by replicas from before they existed without dropping anything.

const meta = { session_id: 's1', agent_id: 'agent', user_id: 'user', created_at: 1 }

function pair(): [SessionDoc, SessionDoc] {
  const a = new SessionDoc({ device: 'agent-device', mode: 'headless' })
  const b = new SessionDoc({ device: 'phone', mode: 'mobile' })
  a.init(meta)
  Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc))
  a.doc.on('update', (u: Uint8Array, origin: unknown) => origin !== 'b' && Y.applyUpdate(b.doc, u, 'a'))
  b.doc.on('update', (u: Uint8Array, origin: unknown) => origin !== 'a' && Y.applyUpdate(a.doc, u, 'b'))
  return [a, b]
}

/** What a replica of the version before reply endings did: its schema knew two statuses, and read `status` raw. */
const { error: _unknownThen, ...oldShape } = MessageSchema.shape
const OldMessageSchema = z.strictObject({ ...oldShape, status: z.enum(['streaming', 'complete']).default('complete') })
function readAsOldReplica(doc: SessionDoc, id: string): unknown {
  const m = doc.doc.getMap('history').get(id) as Y.Map<unknown>
  const info = m.get('info') as Record<string, unknown>
  return OldMessageSchema.parse({ id, ...info, content: (m.get('content') as Y.Text).toString(), status: m.get('status') ?? 'complete' })
}

describe('reply endings', () => {
  it('a stopped reply keeps its text so far, and every replica reads it stopped', () => {
    const [a, b] = pair()
    a.startStream({ id: 'r1', role: 'assistant' })
    a.streamText('r1', 'half a sen')
    a.endStream('r1', 'stopped')
    expect(b.message('r1')).toMatchObject({ status: 'stopped', content: 'half a sen' })
    expect(toRecord(b).messages[0]).toMatchObject({ status: 'stopped' })
  })

  it('an error carries its code and reason; a later ending does not replace the first', () => {
    const [a, b] = pair()
    a.startStream({ id: 'r1', role: 'assistant' })
    a.endStream('r1', 'error', { code: 'model_rate_limited', message: '429 from the model' })
    a.endStream('r1', 'stopped')
    a.finishStream('r1')
    expect(b.message('r1')).toMatchObject({ status: 'error', error: { code: 'model_rate_limited', message: '429 from the model' } })
  })

  it('a replica from before reply endings reads a stopped or failed reply as complete and keeps it', () => {
    const [a] = pair()
    a.startStream({ id: 'r1', role: 'assistant' })
    a.streamText('r1', 'so far')
    a.endStream('r1', 'interrupted')
    a.appendMessage({ id: 'r2', role: 'assistant', content: '', status: 'error', error: { code: 'model_error', message: 'boom' } })
    expect(readAsOldReplica(a, 'r1')).toMatchObject({ status: 'complete', content: 'so far' })
    expect(readAsOldReplica(a, 'r2')).toMatchObject({ status: 'complete' })
  })

  it('an ending this version does not know (a newer one\'s) reads as complete, not as a broken record', () => {
    const [a, b] = pair()
    a.startStream({ id: 'r1', role: 'assistant' })
    const m = a.doc.getMap('history').get('r1') as Y.Map<unknown>
    a.transact(() => {
      m.set('outcome', { status: 'paused-by-future', error: 42 })
      m.set('status', 'complete')
    })
    expect(b.message('r1')?.status).toBe('complete')
    expect(() => SessionRecordSchema.parse(toRecord(b))).not.toThrow()
  })

  it('a record with endings imports with them', () => {
    const [a] = pair()
    a.appendMessage({ id: 'r1', role: 'assistant', content: 'x', status: 'stopped' })
    const copy = new SessionDoc({ device: 'other', mode: 'tab' })
    importRecord(copy, toRecord(a))
    expect(copy.message('r1')?.status).toBe('stopped')
  })
})

describe('stop and retry requests', () => {
  it('are records of the device that asked, listed by the reply they are about, on every replica', () => {
    const [a, b] = pair()
    a.startStream({ id: 'r1', role: 'assistant' })
    const changes: string[][] = []
    a.on('change', (c) => c.controls.size && changes.push([...c.controls]))
    b.requestControl('stop', 'r1', 'c1')
    b.requestControl('stop', 'r1', 'c1') // the same id twice shows once
    expect(a.controlsFor('r1')).toEqual([{ id: 'c1', kind: 'stop', message_id: 'r1', device: 'phone', mode: 'mobile', timestamp: expect.any(Number) }])
    expect(changes).toEqual([['c1']])
    // The reply itself is untouched: it is still the agent's, still streaming.
    expect(a.message('r1')).toMatchObject({ status: 'streaming', author: 'agent-device' })
  })
})
