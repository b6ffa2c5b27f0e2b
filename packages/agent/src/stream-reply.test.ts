import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { SessionDoc, type VolatileState } from '@kai-sync/model'
import { AGENT_TURN_ACTION, streamReply } from './index'

// streamReply against a real session doc, with a second replica (the
// "phone") that watches and asks to stop, as another device would.

function pair(): { agent: SessionDoc; phone: SessionDoc } {
  const agent = new SessionDoc({ device: 'agent-device', mode: 'headless' })
  const phone = new SessionDoc({ device: 'phone', mode: 'mobile' })
  agent.init({ session_id: 's1', agent_id: 'a', user_id: 'u', created_at: 1 })
  Y.applyUpdate(phone.doc, Y.encodeStateAsUpdate(agent.doc))
  agent.doc.on('update', (u: Uint8Array, o: unknown) => o !== 'phone' && Y.applyUpdate(phone.doc, u, 'agent'))
  phone.doc.on('update', (u: Uint8Array, o: unknown) => o !== 'agent' && Y.applyUpdate(agent.doc, u, 'phone'))
  return { agent, phone }
}

async function* chunks(parts: string[], then?: () => Promise<never>): AsyncGenerator<string> {
  for (const p of parts) {
    await new Promise((r) => setTimeout(r, 1))
    yield p
  }
  if (then) await then()
}
const never = () => new Promise<never>(() => undefined)

describe('streamReply', () => {
  it('streams chunks into a reply that ends complete, with one audit entry for the turn', async () => {
    const { agent, phone } = pair()
    const seen: string[] = []
    phone.on('change', (c) => c.messages.forEach((id) => seen.push(phone.message(id)!.content)))
    const volatile: Array<Partial<VolatileState>> = []
    const result = await streamReply({ doc: agent, setVolatile: (v) => void volatile.push(v) }, chunks(['Hel', 'lo', '!']), { model: 'm-1', agent: 'kai agent', replyTo: 'u1', bufferEveryMs: 0 })
    expect(result.outcome).toBe('complete')
    expect(phone.message(result.id)).toMatchObject({ content: 'Hello!', status: 'complete', role: 'assistant', metadata: { agent: 'kai agent', model: 'm-1', reply_to: 'u1' } })
    expect(seen).toEqual(expect.arrayContaining(['', 'Hel', 'Hello', 'Hello!']))
    const audit = phone.audit().filter((a) => a.action === AGENT_TURN_ACTION)
    expect(audit).toHaveLength(1)
    expect(audit[0]!.details).toMatchObject({ message_id: result.id, reply_to: 'u1', model: 'm-1', outcome: 'complete', chars_out: 6, time_to_first_token_ms: expect.any(Number), duration_ms: expect.any(Number) })
    // Replying shows in the volatile state, and is cleared at the end.
    expect(volatile[0]).toEqual({ streaming: { message_id: result.id, buffer: '' }, active_tools: ['kai agent'] })
    expect(volatile).toContainEqual({ streaming: { message_id: result.id, buffer: 'Hello' }, active_tools: ['kai agent'] })
    expect(volatile.at(-1)).toEqual({ streaming: null, active_tools: [] })
  })

  it('a stop request from another device ends it stopped with the text so far, aborting the source even if it never yields again', async () => {
    const { agent, phone } = pair()
    let signal: AbortSignal | undefined
    const turn = streamReply({ doc: agent }, (t) => {
      signal = t.signal
      return chunks(['partial ', 'text'], never)
    })
    await new Promise<void>((r) => phone.on('change', () => phone.messages()[0]?.content === 'partial text' && r()))
    const id = phone.messages()[0]!.id
    phone.requestControl('stop', id)
    const result = await turn
    expect(result.outcome).toBe('stopped')
    expect(signal?.aborted).toBe(true)
    expect(phone.message(id)).toMatchObject({ status: 'stopped', content: 'partial text', author: 'agent-device' })
    expect(phone.auditEntry(`turn-${id}`)?.details).toMatchObject({ outcome: 'stopped' })
  })

  it('a stop request for another reply changes nothing', async () => {
    const { agent, phone } = pair()
    const turn = streamReply({ doc: agent }, chunks(['a', 'b', 'c']))
    phone.requestControl('stop', 'some-other-reply')
    expect((await turn).outcome).toBe('complete')
  })

  it('a source that fails ends the reply in error with a code, its text kept, and the audit entry says so', async () => {
    const { agent, phone } = pair()
    const rateLimited = Object.assign(new Error('Too many requests'), { status: 429 })
    const result = await streamReply({ doc: agent }, chunks(['so ', 'far'], () => Promise.reject(rateLimited)))
    expect(result.outcome).toBe('error')
    expect(phone.message(result.id)).toMatchObject({ status: 'error', content: 'so far', error: { code: 'model_rate_limited' } })
    expect(phone.auditEntry(`turn-${result.id}`)?.details).toMatchObject({ outcome: 'error', error_code: 'model_rate_limited' })
  })

  it.each([
    [{ status: 401, message: 'Incorrect API key provided: sk-abc…' }, 'model_unauthorized'],
    [{ name: 'APIConnectionError', message: 'Connection error.' }, 'model_unreachable'],
    [{ statusCode: 500, message: 'upstream' }, 'model_error'],
  ])('%o ends the reply as %s, without the endpoint\'s words about the key', async (thrown, code) => {
    const { agent, phone } = pair()
    const result = await streamReply({ doc: agent }, () => Promise.reject(Object.assign(new Error(thrown.message), thrown)))
    expect(phone.message(result.id)?.error?.code).toBe(code)
    expect(phone.message(result.id)?.error?.message).not.toContain('sk-')
  })

  it('takes an AI SDK streamText result: its textStream, and its usage for the audit entry', async () => {
    const { agent, phone } = pair()
    const result = await streamReply({ doc: agent }, { textStream: chunks(['x', 'y']), usage: Promise.resolve({ inputTokens: 12, outputTokens: 2 }) }, { model: 'gpt-test' })
    expect(phone.message(result.id)?.content).toBe('xy')
    expect(phone.auditEntry(`turn-${result.id}`)?.details).toMatchObject({ tokens_in: 12, tokens_out: 2, model: 'gpt-test' })
  })

  it('an aborted options.signal stops it too', async () => {
    const { agent } = pair()
    const abort = new AbortController()
    const turn = streamReply({ doc: agent }, chunks(['a'], never), { signal: abort.signal })
    setTimeout(() => abort.abort(), 20)
    expect((await turn).outcome).toBe('stopped')
  })
})
