import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { SessionDoc, type SessionChange } from './session-doc'
import { toRecord } from './record'
import { isKaiError } from './errors'
import { type ConflictPolicy, type Json } from './schemas'
import { SessionRecordSchema, type ConflictInfo } from './exchange-schemas'

const meta = { session_id: 's1', agent_id: 'agent', user_id: 'user', created_at: 1 }

/** A device whose wall clock the test sets. */
function device(id: string, clock = { now: 1000 }): SessionDoc {
  const d = new SessionDoc({ device: id, mode: 'tab', now: () => clock.now })
  d.init(meta)
  return d
}

function send(from: SessionDoc, to: SessionDoc): void {
  Y.applyUpdate(to.doc, Y.encodeStateAsUpdate(from.doc, Y.encodeStateVector(to.doc)), 'remote')
}

function exchange(...docs: SessionDoc[]): void {
  for (const a of docs) for (const b of docs) if (a !== b) send(a, b)
}

/** Two devices that start from one shared state, then go offline. */
function pair(policy?: ConflictPolicy): { a: SessionDoc; b: SessionDoc; ca: { now: number }; cb: { now: number } } {
  const ca = { now: 1000 }
  const cb = { now: 1000 }
  const a = device('device-a', ca)
  const b = device('device-b', cb)
  if (policy) a.policies.setPolicy('default', policy)
  a.appendMessage({ id: 'm1', role: 'assistant', content: 'The quick fox', timestamp: 1 })
  exchange(a, b)
  return { a, b, ca, cb }
}

const valuesOf = (c: ConflictInfo | undefined) => c?.values.map((v) => v.value)

describe('timestamp', () => {
  it('shows the write with the latest clock per key, whatever order the writes arrive in', () => {
    const { a, b, ca, cb } = pair('timestamp')
    ca.now = 2000
    a.setConfig('model', 'model-a')
    cb.now = 3000
    b.setConfig('model', 'model-b')
    b.setConfig('temperature', 0.9)
    ca.now = 4000
    a.setConfig('temperature', 0.2)
    const first = device('c')
    const second = device('d')
    send(a, first)
    send(b, first)
    send(b, second)
    send(a, second)
    for (const d of [first, second]) {
      expect(d.policies.config()).toMatchObject({ model: 'model-b', temperature: 0.2 })
      expect(d.policies.conflicts()).toEqual([])
    }
  })

  it('breaks a tie of equal clocks by device id, not by Yjs client id', () => {
    const { a, b } = pair('timestamp')
    a.setConfig('model', 'from-a')
    b.setConfig('model', 'from-b')
    exchange(a, b)
    expect(a.policies.config().model).toBe('from-b')
    expect(b.policies.config().model).toBe('from-b')
  })
})

describe('merge', () => {
  it('merges what two devices did to a list and shows no conflict', () => {
    const { a, b, ca, cb } = pair('merge')
    a.setConfig('tools', ['search', 'code'])
    exchange(a, b)
    ca.now = cb.now = 2000
    a.setConfig('tools', ['code', 'browse'])
    b.setConfig('tools', ['search', 'code', 'shell'])
    a.setConfig('model', 'model-a')
    cb.now = 2001
    b.setConfig('model', 'model-b')
    exchange(a, b)
    expect(a.policies.config().tools).toEqual(['code', 'shell', 'browse'])
    expect(a.policies.config().model).toBe('model-b')
    expect(b.policies.config()).toEqual(a.policies.config())
    expect(a.policies.conflicts()).toEqual([])
  })

  it('merges concurrent edits of one message character by character', () => {
    const { a, b } = pair('merge')
    a.policies.editMessage('m1', 'The quick brown fox')
    b.policies.editMessage('m1', 'The quick fox jumps')
    exchange(a, b)
    expect(a.message('m1')!.content).toBe('The quick brown fox jumps')
    expect(b.message('m1')!.content).toBe('The quick brown fox jumps')
    expect(a.policies.conflicts()).toEqual([])
  })
})

describe('manual', () => {
  it('reports concurrent writes, shows the latest meanwhile, and closes once a resolution is written', () => {
    const { a, b, cb } = pair('manual')
    a.setConfig('model', 'model-a')
    cb.now = 2000
    b.setConfig('model', 'model-b')
    exchange(a, b)
    const conflict = a.policies.conflict('config.model')
    expect(conflict).toMatchObject({ field: 'config.model', policy: 'manual', visible: 'model-b' })
    expect(valuesOf(conflict)).toEqual(['model-a', 'model-b'])
    expect(conflict!.values.map((v) => v.device_id)).toEqual(['device-a', 'device-b'])
    expect(b.policies.conflicts()).toEqual(a.policies.conflicts())
    expect(a.policies.config().model).toBe('model-b')

    a.policies.resolveConflict('config.model', 'model-a')
    exchange(a, b)
    expect(b.policies.conflicts()).toEqual([])
    expect(b.policies.config().model).toBe('model-a')
  })

  it('never reports sequential edits, of config or of a message', () => {
    const { a, b } = pair('manual')
    for (let i = 0; i < 4; i++) {
      const writer = i % 2 ? b : a
      writer.setConfig('model', `model-${i}`)
      writer.policies.editMessage('m1', `version ${i}`)
      exchange(a, b)
      expect(a.policies.conflicts()).toEqual([])
      expect(b.policies.conflicts()).toEqual([])
    }
    expect(b.message('m1')!.content).toBe('version 3')
  })

  it('reports two devices writing one same value as no conflict', () => {
    const { a, b } = pair('manual')
    a.setConfig('tools', ['search', 'code'])
    b.setConfig('tools', ['search', 'code'])
    exchange(a, b)
    expect(a.policies.conflicts()).toEqual([])
  })

  it('reports concurrent message edits as message.<id>.content and resolves them', () => {
    const { a, b, cb } = pair('manual')
    a.policies.editMessage('m1', 'edited on a')
    cb.now = 2000
    b.policies.editMessage('m1', 'edited on b')
    exchange(a, b)
    expect(valuesOf(a.policies.conflict('message.m1.content'))).toEqual(['edited on a', 'edited on b'])
    expect(a.message('m1')!.content).toBe('edited on b')
    const record = toRecord(a)
    expect(SessionRecordSchema.parse(record).conflicts.map((c) => c.field)).toEqual(['message.m1.content'])
    b.policies.resolveConflict('message.m1.content', 'merged by hand')
    exchange(a, b)
    expect(a.message('m1')!.content).toBe('merged by hand')
    expect(toRecord(a).conflicts).toEqual([])
  })

  it('keeps a third concurrent write in the conflict when a resolution races it', () => {
    const { a, b } = pair('manual')
    const cc = { now: 1000 }
    const c = device('device-c', cc)
    exchange(a, c)
    a.setConfig('model', 'model-a')
    b.setConfig('model', 'model-b')
    exchange(a, b)
    a.policies.resolveConflict('config.model', 'model-a')
    cc.now = 5000
    c.setConfig('model', 'model-c')
    exchange(a, b, c)
    expect(valuesOf(b.policies.conflict('config.model'))).toEqual(['model-a', 'model-c'])
  })

  it('refuses to resolve what is not in conflict, and a value the field does not take', () => {
    const { a, b } = pair('manual')
    expect(() => a.policies.resolveConflict('config.model', 'x')).toThrow(/no open conflict on config.model/)
    expect(() => a.policies.resolveConflict('nonsense', 'x')).toThrow(/not a field policies govern/)
    a.setConfig('temperature', 0.1)
    b.setConfig('temperature', 0.2)
    exchange(a, b)
    expect(() => a.policies.resolveConflict('config.temperature', 'hot')).toThrow(/not a valid value/)
    expect(a.policies.conflict('config.temperature')).toBeDefined()
  })
})

describe('user_choice', () => {
  it('asks the application once per conflict and writes its answer', async () => {
    const { a, b, cb } = pair('user_choice')
    const asked: ConflictInfo[] = []
    b.policies.setUserChoice(async (conflict) => {
      asked.push(conflict)
      return conflict.values[0]!.value
    })
    a.setConfig('model', 'model-a')
    cb.now = 2000
    b.setConfig('model', 'model-b')
    send(a, b)
    send(a, b)
    await b.policies.idle()
    expect(asked.map((c) => [c.field, c.policy, valuesOf(c)])).toEqual([['config.model', 'user_choice', ['model-a', 'model-b']]])
    expect(b.policies.conflicts()).toEqual([])
    exchange(a, b)
    expect(a.policies.config().model).toBe('model-a')
    expect(a.policies.conflicts()).toEqual([])
  })

  it('aborts the question when another device resolves first, and ignores the late answer', async () => {
    const { a, b } = pair('user_choice')
    let signal: AbortSignal | undefined
    let answer!: (v: Json) => void
    b.policies.setUserChoice((_c, ctx) => {
      signal = ctx.signal
      return new Promise((resolve) => (answer = resolve))
    })
    a.setConfig('model', 'model-a')
    b.setConfig('model', 'model-b')
    exchange(a, b)
    await Promise.resolve()
    expect(signal?.aborted).toBe(false)
    a.policies.resolveConflict('config.model', 'chosen-on-a')
    exchange(a, b)
    expect(signal?.aborted).toBe(true)
    answer('late-answer-on-b')
    await b.policies.idle()
    exchange(a, b)
    expect(b.policies.config().model).toBe('chosen-on-a')
  })

  it('leaves the conflict open when the application declines or fails, and says why', async () => {
    const { a, b } = pair('user_choice')
    const errors: string[] = []
    b.policies.on('error', (e) => errors.push(e.code))
    b.policies.setUserChoice(async (c) => {
      if (c.field === 'config.model') return undefined
      throw new Error('dialog crashed')
    })
    a.setConfig('model', 'model-a')
    b.setConfig('model', 'model-b')
    a.setConfig('temperature', 0.1)
    b.setConfig('temperature', 0.2)
    exchange(a, b)
    await b.policies.idle()
    expect(b.policies.conflicts().map((c) => c.field)).toEqual(['config.model', 'config.temperature'])
    expect(errors).toEqual(['internal'])
  })

  it('does not ask a device that may only read', async () => {
    const { a, b } = pair('user_choice')
    let asked = 0
    b.readOnly = true
    b.policies.setUserChoice(async () => {
      asked++
      return 'x'
    })
    a.setConfig('model', 'model-a')
    b.readOnly = false
    b.setConfig('model', 'model-b')
    b.readOnly = true
    exchange(a, b)
    await b.policies.idle()
    expect(asked).toBe(0)
    expect(() => b.policies.resolveConflict('config.model', 'model-a')).toThrow(/forbidden/)
  })
})

describe('policy settings', () => {
  it('a field policy overrides the default, and clearing it falls back', () => {
    const { a, b } = pair('manual')
    a.policies.setPolicy('config.temperature', 'timestamp')
    exchange(a, b)
    a.setConfig('model', 'model-a')
    b.setConfig('model', 'model-b')
    a.setConfig('temperature', 0.1)
    b.setConfig('temperature', 0.2)
    exchange(a, b)
    expect(b.policies.conflicts().map((c) => c.field)).toEqual(['config.model'])
    expect(b.policies.policyOf('config.temperature')).toBe('timestamp')
    b.policies.setPolicy('config.temperature', null)
    expect(b.policies.conflicts().map((c) => c.field)).toEqual(['config.model', 'config.temperature'])
    expect(b.policies.settings()).toEqual({ default: 'manual' })
  })

  it('is timestamp when the session sets nothing, and concurrent settings go to the latest clock', () => {
    const { a, b, cb } = pair()
    expect(a.policies.policyOf('message.m1.content')).toBe('timestamp')
    a.policies.setPolicy('message.content', 'merge')
    cb.now = 2000
    b.policies.setPolicy('message.content', 'manual')
    exchange(a, b)
    expect(a.policies.policyOf('message.m1.content')).toBe('manual')
    expect(b.policies.policyOf('message.m1.content')).toBe('manual')
  })

  it('refuses unknown targets and policies', () => {
    const d = device('a')
    expect(() => d.policies.setPolicy('history' as never, 'merge')).toThrow(/not a policy target/)
    expect(() => d.policies.setPolicy('default', 'coin_flip' as never)).toThrow(/not a policy/)
  })
})

describe('message edits', () => {
  it('refuses to edit a message still streaming or not there', () => {
    const d = device('a')
    d.startStream({ id: 'r', role: 'assistant' })
    expect(() => d.policies.editMessage('r', 'x')).toThrow(/still streaming/)
    expect(() => d.policies.editMessage('missing', 'x')).toThrow(/no message missing/)
    d.streamText('r', 'done')
    d.finishStream('r')
    d.policies.editMessage('r', 'edited')
    expect(d.message('r')!.content).toBe('edited')
  })

  it('edits that arrive before their message open their conflict when the message arrives', () => {
    const { a, b } = pair('manual')
    const c = device('c')
    const d = device('d')
    exchange(a, b, c, d)
    const beforeAppend = Y.encodeStateVector(a.doc)
    a.appendMessage({ id: 'late', role: 'user', content: 'original', timestamp: 5 })
    const append = Y.encodeStateAsUpdate(a.doc, beforeAppend)
    send(a, b)
    send(a, d)
    const bBefore = Y.encodeStateVector(b.doc)
    const dBefore = Y.encodeStateVector(d.doc)
    b.policies.editMessage('late', 'edit b')
    d.policies.editMessage('late', 'edit d')
    const seen: string[][] = []
    c.policies.on('conflicts', (open) => seen.push(open.map((x) => x.field)))
    // c gets both edits (and nothing else) before the message they edit.
    Y.applyUpdate(c.doc, Y.encodeStateAsUpdate(b.doc, bBefore))
    Y.applyUpdate(c.doc, Y.encodeStateAsUpdate(d.doc, dBefore))
    expect(c.policies.edits.heads('late').map((e) => e.value).sort()).toEqual(['edit b', 'edit d'])
    expect(c.policies.conflicts()).toEqual([])
    Y.applyUpdate(c.doc, append)
    exchange(b, d)
    expect(c.policies.conflicts().map((x) => x.field)).toEqual(['message.late.content'])
    expect(c.policies.conflicts()).toEqual(b.policies.conflicts())
    expect(seen).toEqual([['message.late.content']])
  })
})

describe('events and persistence', () => {
  it('emits conflicts when one opens and when it closes, not on unrelated changes', () => {
    const { a, b } = pair('manual')
    const seen: string[][] = []
    a.policies.on('conflicts', (open) => seen.push(open.map((c) => c.field)))
    a.appendMessage({ id: 'x', role: 'user', content: 'unrelated' })
    a.setConfig('model', 'model-a')
    b.setConfig('model', 'model-b')
    exchange(a, b)
    a.policies.resolveConflict('config.model', 'model-b')
    expect(seen).toEqual([['config.model'], []])
  })

  it('reports a message whose shown content a remote policy change altered, in the session change event', () => {
    const { a, b } = pair('manual')
    a.policies.editMessage('m1', 'edit a')
    b.policies.editMessage('m1', 'edit b')
    exchange(a, b)
    const changes: SessionChange[] = []
    b.on('change', (c) => changes.push(c))
    const before = b.message('m1')!.content
    a.policies.setPolicy('message.content', 'merge')
    exchange(a, b)
    expect(b.message('m1')!.content).not.toBe(before)
    expect(changes.some((c) => c.messages.has('m1') && !c.local)).toBe(true)
  })

  it('a reopened doc shows the same values and open conflicts', () => {
    const { a, b } = pair('manual')
    a.setConfig('model', 'model-a')
    b.setConfig('model', 'model-b')
    a.policies.editMessage('m1', 'edit a')
    b.policies.editMessage('m1', 'edit b')
    exchange(a, b)
    const copy = new Y.Doc()
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(a.doc))
    const reopened = new SessionDoc({ device: 'device-a', mode: 'tab', doc: copy })
    expect(reopened.policies.conflicts()).toEqual(a.policies.conflicts())
    expect(reopened.policies.conflicts()).toHaveLength(2)
    expect(toRecord(reopened)).toEqual(toRecord(a))
    // Its clock has moved past every write it loaded.
    reopened.setConfig('model', 'after-reload')
    const heads = reopened.configRegister.heads('model')
    expect(heads.map((w) => w.value)).toEqual(['after-reload'])
  })
})

describe('errors', () => {
  it('are KaiErrors with stable codes', () => {
    const d = device('a')
    const codeOf = (fn: () => void) => {
      try {
        fn()
      } catch (e) {
        return isKaiError(e) ? e.code : 'not a KaiError'
      }
      return 'no error'
    }
    expect(codeOf(() => d.policies.editMessage('missing', 'x'))).toBe('not_found')
    expect(codeOf(() => d.policies.resolveConflict('config.model', 'x'))).toBe('not_found')
    expect(codeOf(() => d.policies.setPolicy('default', 'nope' as never))).toBe('invalid_input')
  })
})
