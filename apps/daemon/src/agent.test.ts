import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestModelServer, type TestModelServer } from '@kai-sync/agent/testing'
import { eventually, kai, runCli, spawnDaemon, spawnKaiRelay, type DaemonProcess, type TestRelay } from './testing'

// The agent device as a person meets it: `kai agent` is a real daemon
// process with its own key, enrolled in a session that another daemon (the
// person's device, A) owns, through the real relay. The model is a local
// HTTP server speaking the OpenAI streaming wire format, reached through
// the openai package; it records every request and when its client hung up.

const cleanups: Array<() => void | Promise<void>> = []
afterAll(async () => {
  for (const c of cleanups.reverse()) await c()
})

type Msg = { id: string; role: string; content: string; status: string; error?: { code: string }; metadata?: Record<string, unknown> }
const record = async (d: DaemonProcess, id: string) => (await d.api('GET', `/session/${id}`)).json as { messages: Msg[]; audit: Array<{ action: string; details: Record<string, unknown>; actor: string }> }
const replyTo = (messages: Msg[], userId: string) => messages.find((m) => m.metadata?.reply_to === userId)

let model: TestModelServer
let relay: TestRelay
let a: DaemonProcess
let agent: DaemonProcess
let sessionId: string
let agentDevice: string

const agentEnv = () => ({ OPENAI_BASE_URL: model.baseUrl, OPENAI_API_KEY: 'test-key-not-secret', KAI_AGENT_MODEL: 'default-model' })

/** Appends a user message on A and returns its id. */
async function say(text: string): Promise<string> {
  const res = await a.api('POST', `/session/${sessionId}/messages`, { role: 'user', content: text })
  expect(res.status).toBe(201)
  return res.json.id as string
}

/** Waits on A for the agent's reply to `userId` to satisfy `done`. */
const replyOnA = (userId: string, done: (m: Msg) => boolean, what: string, timeoutMs = 30_000) =>
  eventually(async () => replyTo((await record(a, sessionId)).messages, userId), (m) => m !== undefined && done(m), what, timeoutMs) as Promise<Msg>

beforeAll(async () => {
  model = await startTestModelServer()
  cleanups.push(() => model.close())
  relay = await spawnKaiRelay()
  cleanups.push(() => relay.cleanup())
  ;[a, agent] = await Promise.all([
    spawnDaemon({ relayUrl: relay.url, label: 'phone-ish daemon A' }),
    spawnDaemon({ relayUrl: relay.url, label: 'agent', command: 'agent', env: agentEnv() }),
  ])
  cleanups.push(() => a.cleanup(), () => agent.cleanup())
  sessionId = (await kai(a, 'create', '--agent', 'helper', '--user', 'ada')).trim()
  await kai(a, 'config', 'set', sessionId, 'system_prompt', 'Be brief.')
  await kai(a, 'config', 'set', sessionId, 'temperature', '0.2')
  // The agent joins as any headless device does: A enrolls its public keys, it joins through the relay.
  const identity = (await agent.api('GET', '/device')).json as { device: string; box: string }
  agentDevice = identity.device
  await kai(a, 'device', 'add', sessionId, identity.device, identity.box, '--role', 'writer', '--label', 'kai agent')
  expect((await agent.api('POST', `/session/${sessionId}/join`, {})).status).toBe(200)
})

describe('kai agent, a model-backed device in a session through the relay', () => {
  it('answers a user message token by token on the other device, sending the history and the resolved config', async () => {
    model.enqueue({ tokens: ['One', ' two', ' three', ' four', ' five'], delayMs: 300, usage: { prompt_tokens: 11, completion_tokens: 5 } })
    const question = await say('hello agent')
    const partials = new Set<string>()
    const done = await eventually(
      async () => {
        const m = replyTo((await record(a, sessionId)).messages, question)
        if (m?.status === 'streaming' && m.content) partials.add(m.content)
        return m
      },
      (m) => m?.status === 'complete',
      'the reply to complete on A',
    ) as Msg
    expect(done).toMatchObject({ content: 'One two three four five', role: 'assistant', metadata: { agent: 'kai agent', model: 'default-model', reply_to: question } })
    // Seen growing on A while it streamed, not only whole at the end.
    expect(partials.size).toBeGreaterThanOrEqual(2)
    const request = await model.request(0)
    expect(request.body).toMatchObject({ model: 'default-model', temperature: 0.2, stream: true, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello agent' }] })
    expect(request.headers.authorization).toBe('Bearer test-key-not-secret')
    const audit = await eventually(async () => (await record(a, sessionId)).audit.find((e) => e.details?.message_id === done.id), (e) => e !== undefined, 'the turn\'s audit entry on A')
    expect(audit).toMatchObject({ action: 'agent.turn', actor: agentDevice, details: { outcome: 'complete', model: 'default-model', tokens_in: 11, tokens_out: 5, time_to_first_token_ms: expect.any(Number), duration_ms: expect.any(Number) } })
    // The key reached the model, and nothing else: not the agent's log.
    expect(agent.output().join('\n')).not.toContain('test-key-not-secret')
  })

  it('a model set in the session\'s config on A is what the next answer uses, with the history before it in view order', async () => {
    await kai(a, 'config', 'set', sessionId, 'model', 'model-from-config')
    const before = model.requests.length
    const question = await say('and now?')
    const reply = await replyOnA(question, (m) => m.status === 'complete', 'the second reply')
    expect(reply.metadata?.model).toBe('model-from-config')
    const request = await model.request(before)
    expect(request.body.model).toBe('model-from-config')
    expect(request.body.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hello agent' },
      { role: 'assistant', content: 'One two three four five' },
      { role: 'user', content: 'and now?' },
    ])
  })

  it('kai stop on A ends the reply stopped, its text kept, the model request closed within 200 ms of the stop reaching the agent', async () => {
    // Slow tokens (a model thinking): the stop must abort the request, not wait for the next token to end the stream.
    model.enqueue({ tokens: Array.from({ length: 400 }, (_, i) => `t${i} `), delayMs: 1500 })
    const before = model.requests.length
    const question = await say('talk for a long time')
    const streaming = await replyOnA(question, (m) => m.status === 'streaming' && m.content.length > 0, 'the reply to start streaming on A')
    const stop = await runCli(a.dataDir, ['stop', sessionId, streaming.id])
    expect(stop.code, stop.stderr).toBe(0)
    const stopped = await replyOnA(question, (m) => m.status === 'stopped', 'the reply to end stopped on A')
    expect(stopped.content.length).toBeGreaterThanOrEqual(streaming.content.length)
    expect(stopped.content.startsWith(streaming.content)).toBe(true)
    const request = await model.request(before)
    await eventually(async () => request.clientClosedAt, (t) => t !== undefined, 'the model server to see its connection closed')
    expect(request.sent).toBeLessThan(400)
    const observed = agent.output().map((l) => (l.startsWith('{') ? JSON.parse(l) : null)).find((l) => l?.msg === 'stop request observed')
    expect(observed).toBeDefined()
    const stopToClose = request.clientClosedAt! - observed.at
    console.log(`stop observed by the agent -> model connection closed: ${stopToClose} ms`)
    expect(stopToClose).toBeLessThan(200)
    const audit = await eventually(async () => (await record(a, sessionId)).audit.find((e) => e.details?.message_id === stopped.id), (e) => e !== undefined, 'the stopped turn\'s audit entry') as { details: Record<string, unknown> }
    expect(audit.details.outcome).toBe('stopped')
    // A stopped reply stays as it was stopped: no program streams on into it.
    expect((await a.api('POST', `/session/${sessionId}/messages/${stopped.id}/stream`, { text: ' more' })).status).toBe(409)
  })

  it.each([
    [{ status: 401 }, 'model_unauthorized', ''],
    [{ status: 429 }, 'model_rate_limited', ''],
    [{ tokens: ['half ', 'a ', 'reply ', 'never ', 'finished'], cutAfter: 2, delayMs: 20 }, 'model_stream_cut', 'half a '],
  ])('%o from the model ends the reply in error %s, with an audit entry; nothing hangs in replying', async (behavior, code, content) => {
    model.enqueue(behavior)
    const question = await say(`provoke ${code}`)
    const reply = await replyOnA(question, (m) => m.status !== 'streaming', `the reply to end on A (${code})`)
    expect(reply).toMatchObject({ status: 'error', error: { code }, content })
    const audit = await eventually(async () => (await record(a, sessionId)).audit.find((e) => e.details?.message_id === reply.id), (e) => e !== undefined, 'the failed turn\'s audit entry') as { details: Record<string, unknown> }
    expect(audit.details).toMatchObject({ outcome: 'error', error_code: code })
    // The agent's volatile state no longer says it is replying.
    const volatile = (await agent.api('GET', `/session/${sessionId}`)).json.volatile
    expect(volatile).toMatchObject({ streaming: null, active_tools: [] })
  })

  it('kai retry on A for a failed reply makes the agent answer again, as a new reply from the history before it', async () => {
    const failed = (await record(a, sessionId)).messages.filter((m) => m.status === 'error').at(-1)!
    const before = model.requests.length
    const retry = await runCli(a.dataDir, ['retry', sessionId, failed.id])
    expect(retry.code, retry.stderr).toBe(0)
    const again = await eventually(async () => (await record(a, sessionId)).messages.find((m) => m.metadata?.retry_of === failed.id), (m) => m?.status === 'complete', 'the retried reply on A') as Msg
    expect(again.content).toBe('Hello from the model.')
    const messages = (await model.request(before)).body.messages as Array<{ content: string }>
    expect(messages.at(-1)).toEqual({ role: 'user', content: 'provoke model_stream_cut' })
    // A stopped or failed reply never goes to the model as if it were an answer.
    expect(messages.map((m) => m.content)).not.toContain('half a ')
    // Asking to stop what is not streaming is refused with a code, and changes nothing.
    const refused = await runCli(a.dataDir, ['--json', 'stop', sessionId, again.id])
    expect(refused.code).toBe(1)
    expect(JSON.parse(refused.stderr).error.code).toBe('conflict')
  })

  it('an agent killed mid-reply marks that reply interrupted when it starts again, on every device', async () => {
    model.enqueue({ tokens: Array.from({ length: 400 }, (_, i) => `k${i} `), delayMs: 50 })
    const question = await say('you will be killed')
    const streaming = await replyOnA(question, (m) => m.status === 'streaming' && m.content.length > 0, 'the reply to stream on A before the kill')
    await agent.process.kill9()
    agent = await spawnDaemon({ relayUrl: relay.url, label: 'agent', command: 'agent', env: agentEnv(), dataDir: agent.dataDir })
    cleanups.push(() => agent.cleanup())
    const interrupted = await replyOnA(question, (m) => m.status === 'interrupted', 'the reply to show interrupted on A after the agent restarted', 60_000)
    expect(interrupted.id).toBe(streaming.id)
    expect(interrupted.content.startsWith(streaming.content)).toBe(true)
    expect(interrupted.error?.code).toBe('interrupted')
  })
})

describe('kai agent with no model server behind OPENAI_BASE_URL', () => {
  it('ends the reply in error model_unreachable, in a session made on the agent\'s own daemon', async () => {
    const closed = await startTestModelServer()
    const baseUrl = closed.baseUrl
    await closed.close()
    const lonely = await spawnDaemon({ label: 'agent, no model', command: 'agent', env: { OPENAI_BASE_URL: baseUrl, KAI_AGENT_MODEL: 'm' } })
    cleanups.push(() => lonely.cleanup())
    const id = (await kai(lonely, 'create')).trim()
    const question = (await lonely.api('POST', `/session/${id}/messages`, { role: 'user', content: 'anyone there?' })).json.id as string
    const reply = await eventually(async () => replyTo((await record(lonely, id)).messages, question), (m) => m !== undefined && m.status !== 'streaming', 'the reply to end')
    expect(reply).toMatchObject({ status: 'error', error: { code: 'model_unreachable' } })
  })
})
