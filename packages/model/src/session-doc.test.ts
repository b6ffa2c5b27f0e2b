import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { SessionDoc, type SessionChange } from './session-doc'
import { importRecord, toRecord } from './record'
import { type Mode } from './schemas'
import { SessionRecordSchema } from './exchange-schemas'

const meta = { session_id: 's1', agent_id: 'agent', user_id: 'user', created_at: 1 }

function device(id: string, mode: Mode = 'tab', now?: () => number): SessionDoc {
  const d = new SessionDoc({ device: id, mode, ...(now ? { now } : {}) })
  return d
}

/** Delivers everything each doc has to the other, both ways. */
function exchange(a: SessionDoc, b: SessionDoc): void {
  const ua = Y.encodeStateAsUpdate(a.doc, Y.encodeStateVector(b.doc))
  const ub = Y.encodeStateAsUpdate(b.doc, Y.encodeStateVector(a.doc))
  Y.applyUpdate(b.doc, ua, 'remote')
  Y.applyUpdate(a.doc, ub, 'remote')
}

describe('SessionDoc history', () => {
  it('orders messages by (timestamp, id), not by arrival', () => {
    const d = device('a')
    d.init(meta)
    d.appendMessage({ id: 'm3', role: 'user', content: 'three', timestamp: 30 })
    d.appendMessage({ id: 'm1', role: 'user', content: 'one', timestamp: 10 })
    d.appendMessage({ id: 'm2b', role: 'user', content: 'two b', timestamp: 20 })
    d.appendMessage({ id: 'm2a', role: 'user', content: 'two a', timestamp: 20 })
    expect(d.messages().map((m) => m.id)).toEqual(['m1', 'm2a', 'm2b', 'm3'])
  })

  it('shows a message appended twice once, on one device and across devices', () => {
    const a = device('a')
    const b = device('b')
    const msg = { id: 'same', role: 'user' as const, content: 'hi', timestamp: 5 }
    a.appendMessage(msg)
    a.appendMessage(msg)
    b.appendMessage(msg)
    exchange(a, b)
    expect(a.messages().map((m) => m.id)).toEqual(['same'])
    expect(b.messages()).toEqual(a.messages())
  })

  it('keeps both devices messages when they append at once', () => {
    const a = device('a')
    const b = device('b')
    a.appendMessage({ id: 'from-a', role: 'user', content: 'A', timestamp: 2 })
    b.appendMessage({ id: 'from-b', role: 'user', content: 'B', timestamp: 1 })
    exchange(a, b)
    expect(a.messages().map((m) => m.id)).toEqual(['from-b', 'from-a'])
    expect(b.messages()).toEqual(a.messages())
  })

  it('merges a reply streamed on one device with appends on another', () => {
    const a = device('a', 'desktop')
    const b = device('b', 'mobile')
    a.startStream({ id: 'reply', role: 'assistant', timestamp: 10 })
    exchange(a, b)
    for (const token of ['Hel', 'lo', ', ', 'wor']) {
      a.streamText('reply', token)
      b.appendMessage({ id: `user-${token}`, role: 'user', content: token, timestamp: 20 })
      exchange(a, b)
    }
    a.streamText('reply', 'ld')
    a.finishStream('reply')
    exchange(a, b)
    expect(b.message('reply')).toMatchObject({ content: 'Hello, world', status: 'complete', author: 'a', mode: 'desktop' })
    expect(b.messageCount).toBe(5)
    expect(b.messages()).toEqual(a.messages())
  })

  it('keeps the tokens of two devices streaming into one message at once', () => {
    const a = device('a')
    const b = device('b')
    a.startStream({ id: 'r', role: 'assistant', timestamp: 1 })
    exchange(a, b)
    a.streamText('r', 'AAA')
    b.streamText('r', 'BBB')
    exchange(a, b)
    const content = a.message('r')!.content
    expect(content).toHaveLength(6)
    expect(content).toContain('AAA')
    expect(content).toContain('BBB')
    expect(b.message('r')!.content).toBe(content)
  })

  it('rejects a message that breaks the schema and leaves the doc unchanged', () => {
    const d = device('a')
    expect(() => d.appendMessage({ id: 'x', role: 'robot' as never, content: 'x', timestamp: 1 })).toThrow()
    expect(() => d.streamText('missing', 'x')).toThrow(/no message missing/)
    expect(d.messageCount).toBe(0)
  })
})

describe('SessionDoc config', () => {
  it('sequential writes leave one value', () => {
    const a = device('a')
    const b = device('b')
    a.setConfig('model', 'gpt-a')
    exchange(a, b)
    b.setConfig('model', 'gpt-b')
    exchange(a, b)
    expect(a.configRegister.heads('model').map((w) => w.value)).toEqual(['gpt-b'])
    expect(toRecordOf(a).config.model).toBe('gpt-b')
  })

  it('concurrent writes are both kept and the later clock is shown by default', () => {
    let t = 100
    const a = device('a', 'tab', () => t)
    const b = device('b', 'tab', () => t)
    a.setConfig('temperature', 0.2)
    t = 200
    b.setConfig('temperature', 0.9)
    exchange(a, b)
    expect(a.configRegister.heads('temperature').map((w) => w.value)).toEqual([0.2, 0.9])
    expect(toRecordOf(a).config.temperature).toBe(0.9)
    expect(toRecordOf(b).config.temperature).toBe(0.9)
    // A write that has seen both supersedes both.
    a.setConfig('temperature', 0.5)
    exchange(a, b)
    expect(b.configRegister.heads('temperature').map((w) => w.value)).toEqual([0.5])
  })

  it('refuses invalid values and field names', () => {
    const d = device('a')
    expect(() => d.setConfig('temperature', 'hot')).toThrow(/not a valid value for config.temperature/)
    expect(() => d.setConfig('bad#field', 1)).toThrow(/config field names/)
    d.setConfig('custom_flag', { nested: [1, 2] })
    d.init(meta)
    expect(toRecord(d).config.custom_flag).toEqual({ nested: [1, 2] })
  })
})

describe('SessionDoc authorship', () => {
  it('forged_author: a message, audit entry or memory snapshot naming another device is refused, changing nothing', () => {
    const a = device('a')
    const before = Y.encodeStateAsUpdate(a.doc)
    expect(() => a.appendMessage({ id: 'm', role: 'user', content: 'x', author: 'b' })).toThrow(/^forged_author: /)
    expect(() => a.appendAudit({ id: 'e', action: 'read', actor: 'b' })).toThrow(/^forged_author: /)
    expect(() => a.addMemory({ id: 'mem', data: {}, author: 'b' })).toThrow(/^forged_author: /)
    expect(Y.encodeStateAsUpdate(a.doc)).toEqual(before)
    expect(a.appendMessage({ id: 'm', role: 'user', content: 'x', author: 'a' }).author).toBe('a')
  })
})

describe('SessionDoc audit, memory, events', () => {
  it('keeps audit and memory as a union ordered by time', () => {
    const a = device('a')
    const b = device('b')
    a.appendAudit({ id: 'a2', action: 'config.set', timestamp: 2 })
    b.appendAudit({ id: 'a1', action: 'message.append', timestamp: 1 })
    a.addMemory({ id: 'mem', data: { fact: 'likes tea' }, timestamp: 3 })
    exchange(a, b)
    expect(b.audit().map((e) => [e.id, e.actor])).toEqual([['a1', 'b'], ['a2', 'a']])
    expect(b.memory()[0]).toMatchObject({ id: 'mem', author: 'a', data: { fact: 'likes tea' } })
  })

  it('reports what each transaction changed, and whether it was local', () => {
    const a = device('a')
    const b = device('b')
    const seen: SessionChange[] = []
    b.on('change', (c) => seen.push(c))
    a.startStream({ id: 'r', role: 'assistant', timestamp: 1 })
    a.setConfig('model', 'x')
    exchange(a, b)
    a.streamText('r', 'token')
    exchange(a, b)
    b.appendAudit({ id: 'e', action: 'read' })
    expect(seen).toHaveLength(3)
    expect([...seen[0]!.messages]).toEqual(['r'])
    expect([...seen[0]!.config]).toEqual(['model'])
    expect(seen[0]!.local).toBe(false)
    expect([...seen[1]!.messages]).toEqual(['r'])
    expect([...seen[2]!.audit]).toEqual(['e'])
    expect(seen[2]!.local).toBe(true)
  })

  it('rebuilds its ordered views from a doc that already has content', () => {
    const a = device('a')
    a.init(meta)
    a.appendMessage({ id: 'm2', role: 'user', content: 'b', timestamp: 2 })
    a.appendMessage({ id: 'm1', role: 'user', content: 'a', timestamp: 1 })
    const copy = new Y.Doc()
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(a.doc))
    const reopened = new SessionDoc({ device: 'a', mode: 'tab', doc: copy })
    expect(reopened.messageIds()).toEqual(['m1', 'm2'])
  })
})

describe('records', () => {
  it('toRecord validates and importRecord round-trips it', () => {
    const a = device('a', 'headless')
    a.init(meta)
    a.appendMessage({ id: 'm1', role: 'user', content: 'hello', timestamp: 10, metadata: { lang: 'en' } })
    a.startStream({ id: 'm2', role: 'assistant', timestamp: 11 })
    a.streamText('m2', 'partial')
    a.setConfig('model', 'claude')
    a.setConfig('tools', ['search'])
    a.appendAudit({ id: 'au', action: 'created', timestamp: 12 })
    a.addMemory({ id: 'me', data: { k: 'v' }, summary: 'kv', timestamp: 13 })
    const record = toRecord(a)
    expect(SessionRecordSchema.parse(record)).toEqual(record)
    expect(record.messages[1]).toMatchObject({ content: 'partial', status: 'streaming' })

    const restored = device('a', 'headless')
    importRecord(restored, record)
    const again = toRecord(restored)
    expect({ ...again, updated_at: 0 }).toEqual({ ...record, updated_at: 0 })
  })

  it('importRecord on another device writes the entries as that device\'s own', () => {
    const a = device('a')
    a.init(meta)
    a.appendMessage({ id: 'm1', role: 'user', content: 'hello', timestamp: 10 })
    a.appendAudit({ id: 'au', action: 'created', timestamp: 12 })
    a.addMemory({ id: 'me', data: { k: 'v' }, timestamp: 13 })
    const b = device('b')
    importRecord(b, toRecord(a))
    const record = toRecord(b)
    expect([record.messages[0]?.author, record.audit[0]?.actor, record.memory[0]?.author]).toEqual(['b', 'b', 'b'])
  })

  it('refuses to import a record that breaks the schema, changing nothing', () => {
    const b = device('b')
    expect(() => importRecord(b, { ...meta, messages: [{ id: 'x' }], config: {}, audit: [], memory: [] } as never)).toThrow()
    expect(b.metaOrNull()).toBeNull()
    expect(() => toRecord(b)).toThrow(/no identity yet/)
  })
})

function toRecordOf(d: SessionDoc) {
  if (!d.metaOrNull()) d.init(meta)
  return toRecord(d)
}
