import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebCryptoDeviceKey, toBase64Url } from '@kai-sync/crypto'
import { signDelta } from './delta-signature'
import { DaemonClient, type SseEvent } from './cli/daemon-client'
import { runCli, spawnDaemon, type DaemonProcess } from './testing'

// Every bad request gets its 4xx and stable code, and changes nothing: the
// session, the session list and the client keys read the same afterwards.

let daemon: DaemonProcess
let sessionId: string
let client: WebCryptoDeviceKey

beforeAll(async () => {
  daemon = await spawnDaemon()
  sessionId = (await daemon.api('POST', '/sessions', { agent_id: 'assistant', user_id: 'ada' })).json.session_id
  client = await WebCryptoDeviceKey.generate()
  expect((await daemon.api('POST', '/clients', { public_key: toBase64Url(client.publicKey), label: 'test client' })).status).toBe(201)
  await daemon.api('POST', `/session/${sessionId}/messages`, { id: 'done', role: 'user', content: 'a complete message' })
})
afterAll(() => daemon.cleanup())

function delta(overrides: Record<string, unknown> = {}) {
  return {
    session_id: sessionId,
    device_id: 'agent-runtime',
    mode: 'headless',
    timestamp: Date.now(),
    messages: [{ id: `m-${Math.random()}`, role: 'assistant', content: 'from a signed delta', timestamp: Date.now() }],
    ...overrides,
  }
}

async function state() {
  const [record, sessions, clients] = await Promise.all([
    daemon.api('GET', `/session/${sessionId}`),
    daemon.api('GET', '/sessions'),
    daemon.api('GET', '/clients'),
  ])
  return { record: record.json, sessions: sessions.json, clients: clients.json }
}

async function raw(method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}) {
  const response = await fetch(`${daemon.url}${path}`, { method, headers: init.headers ?? {}, ...(init.body !== undefined ? { body: init.body } : {}) })
  return { status: response.status, json: (await response.json()) as { error: { code: string; message: string } } }
}

const auth = () => ({ authorization: `Bearer ${daemon.token}`, 'content-type': 'application/json' })

describe('bad requests', () => {
  const cases: Array<[string, number, string, () => Promise<{ status: number; json: any }>]> = [
    ['malformed JSON', 400, 'malformed', () => raw('POST', `/session/${sessionId}/messages`, { headers: auth(), body: '{"role": "user", "content": ' })],
    ['a body that is not JSON at all', 400, 'invalid_input', () => raw('POST', `/session/${sessionId}/messages`, { headers: { ...auth(), 'content-type': 'text/plain' }, body: 'hello' })],
    ['a schema violation', 400, 'invalid_input', () => daemon.api('POST', `/session/${sessionId}/messages`, { role: 'robot', content: 'beep' })],
    ['a config patch with one good field and one bad name', 400, 'invalid_input', () => daemon.api('PATCH', `/session/${sessionId}/config`, { model: 'changed', 'bad name!': 1 })],
    ['a config value its schema refuses', 400, 'invalid_input', () => daemon.api('PATCH', `/session/${sessionId}/config`, { temperature: 9 })],
    ['no token', 401, 'unauthenticated', () => raw('POST', `/session/${sessionId}/messages`, { headers: { 'content-type': 'application/json' }, body: '{"role":"user","content":"x"}' })],
    ['a wrong token', 401, 'unauthenticated', () => raw('POST', `/session/${sessionId}/messages`, { headers: { ...auth(), authorization: `Bearer ${'A'.repeat(43)}` }, body: '{"role":"user","content":"x"}' })],
    ['an unknown session', 404, 'not_found', () => daemon.api('POST', '/session/no-such-session/messages', { role: 'user', content: 'x' })],
    ['an unknown session (GET, the seed\'s 404)', 404, 'not_found', () => daemon.api('GET', '/session/no-such-session')],
    ['an unknown route', 404, 'not_found', () => daemon.api('GET', '/nowhere')],
    ['an oversized body (over the default 1 MiB)', 413, 'too_large', () => daemon.api('POST', `/session/${sessionId}/messages`, { role: 'user', content: 'x'.repeat(1024 * 1024 + 10) })],
    ['resolving a conflict with a value its field refuses', 400, 'invalid_input', () => daemon.api('POST', `/session/${sessionId}/conflicts/resolve`, { field: 'config.temperature', value: 'hot' })],
    ['resolving something that is not a config field or message content', 400, 'invalid_input', () => daemon.api('POST', `/session/${sessionId}/conflicts/resolve`, { field: 'audit.x', value: 'x' })],
    ['resolving a field with no open conflict', 404, 'not_found', () => daemon.api('POST', `/session/${sessionId}/conflicts/resolve`, { field: 'config.temperature', value: 1.5 })],
    ['setting a policy that does not exist', 400, 'invalid_input', () => daemon.api('POST', `/session/${sessionId}/policies`, { target: 'config.model', policy: 'coin_flip' })],
    ['setting a policy on something that is not a target', 400, 'invalid_input', () => daemon.api('POST', `/session/${sessionId}/policies`, { target: 'history', policy: 'manual' })],
    ['an event stream without the token', 401, 'unauthenticated', () => raw('GET', `/session/${sessionId}/events`)],
    ['streaming into a complete message', 409, 'conflict', () => daemon.api('POST', `/session/${sessionId}/messages/done/stream`, { text: 'more' })],
    [
      '/sync signed by a key that is not registered',
      401,
      'bad_signature',
      async () => {
        const d = delta()
        return daemon.api('POST', `/session/${sessionId}/sync`, { delta: d, signature: await signDelta(d, await WebCryptoDeviceKey.generate()) })
      },
    ],
    [
      '/sync with a delta changed after signing',
      401,
      'bad_signature',
      async () => {
        const d = delta()
        const signature = await signDelta(d, client)
        return daemon.api('POST', `/session/${sessionId}/sync`, { delta: { ...d, timestamp: d.timestamp + 1 }, signature })
      },
    ],
    ['/sync with a signature that is not one', 401, 'bad_signature', () => daemon.api('POST', `/session/${sessionId}/sync`, { delta: delta(), signature: 'not-a-signature' })],
    [
      '/sync with one valid message and one bad config value (nothing of it applied)',
      400,
      'invalid_input',
      async () => {
        const d = delta({ config: { temperature: 7 } })
        return daemon.api('POST', `/session/${sessionId}/sync`, { delta: d, signature: await signDelta(d, client) })
      },
    ],
    [
      '/sync with a valid message and a config field name the register refuses',
      400,
      'invalid_input',
      async () => {
        const d = delta({ config: { 'no spaces allowed': 1 } })
        return daemon.api('POST', `/session/${sessionId}/sync`, { delta: d, signature: await signDelta(d, client) })
      },
    ],
    [
      '/sync with a delta for another session',
      400,
      'wrong_session',
      async () => {
        const d = delta({ session_id: 'another-session' })
        return daemon.api('POST', `/session/${sessionId}/sync`, { delta: d, signature: await signDelta(d, client) })
      },
    ],
  ]

  it.each(cases)('%s: %i %s, and nothing changes', async (_name, status, code, request) => {
    const before = await state()
    const response = await request()
    expect(response.status).toBe(status)
    expect(response.json.error.code).toBe(code)
    expect(response.json.error.message).toMatch(new RegExp(`^${code}: .{10,}`))
    expect(await state()).toEqual(before)
  })
})

describe('the seed\'s /sync', () => {
  it('applies a delta signed by a registered client, all of it, and a replay changes nothing', async () => {
    const d = delta({ config: { temperature: 0.2, model: 'small' }, audit: [{ id: 'a-1', timestamp: Date.now(), actor: 'agent-runtime', mode: 'headless', action: 'tool.run' }] })
    const body = { delta: d, signature: await signDelta(d, client) }
    expect(await daemon.api('POST', `/session/${sessionId}/sync`, body)).toEqual({ status: 200, json: { success: true } })
    const record = (await daemon.api('GET', `/session/${sessionId}`)).json
    const id = (d.messages as Array<{ id: string }>)[0]!.id
    // The daemon's device signs what it writes, so it is the author and actor, not the program's device_id.
    const self = (await daemon.api('GET', '/device')).json.device
    expect(record.messages.find((m: { id: string }) => m.id === id)).toMatchObject({ content: 'from a signed delta', author: self, mode: 'headless' })
    expect(record.audit.find((a: { id: string }) => a.id === 'a-1')).toMatchObject({ actor: self, action: 'tool.run' })
    expect(record.config).toMatchObject({ temperature: 0.2, model: 'small' })
    expect(record.audit.map((a: { id: string }) => a.id)).toContain('a-1')
    expect((await daemon.api('POST', `/session/${sessionId}/sync`, body)).status).toBe(200)
    const again = (await daemon.api('GET', `/session/${sessionId}`)).json
    expect(again.messages).toEqual(record.messages)
    expect(again.audit).toEqual(record.audit)
  })
})

describe('the event stream', () => {
  it('delivers this device\'s changes as Server-Sent Events: messages, config, status', async () => {
    const events: SseEvent[] = []
    const abort = new AbortController()
    const following = new DaemonClient({ dataDir: daemon.dataDir }).events(`/session/${sessionId}/events`, (e) => events.push(e), abort.signal)
    const seen = async (what: string, test: (e: SseEvent) => boolean) => {
      const until = Date.now() + 10_000
      while (!events.some(test)) {
        if (Date.now() > until) throw new Error(`no ${what} event; got ${JSON.stringify(events)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    await seen('ready', (e) => e.event === 'ready')
    expect(events.find((e) => e.event === 'status')?.data).toMatchObject({ sync: 'saved', relay: 'off', role: 'owner' })
    await daemon.api('PATCH', `/session/${sessionId}/config`, { model: 'from-the-event-test' })
    await daemon.api('POST', `/session/${sessionId}/messages`, { id: 'live', role: 'assistant', status: 'streaming', content: 'seen ' })
    await daemon.api('POST', `/session/${sessionId}/messages/live/stream`, { text: 'live', done: true })
    await seen('config', (e) => e.event === 'config' && (e.data as { config: { model: string } }).config.model === 'from-the-event-test')
    // The new message whole, then only the text streamed into it, then its status.
    await seen('message_status', (e) => e.event === 'message_status' && (e.data as { id: string }).id === 'live')
    const live = events.filter((e) => ['message', 'delta', 'message_status'].includes(e.event) && (e.data as { id: string }).id === 'live')
    expect(live.map((e) => e.event)).toEqual(['message', 'delta', 'message_status'])
    expect(live[0]!.data).toMatchObject({ content: 'seen ', status: 'streaming' })
    expect(live[1]!.data).toEqual({ id: 'live', offset: 5, text: 'live' })
    expect(live[2]!.data).toEqual({ id: 'live', status: 'complete' })
    abort.abort()
    await following
  })
})

describe('conflict policies', () => {
  it('are set per field in the session, read back, and cleared with null', async () => {
    const set = await daemon.api('POST', `/session/${sessionId}/policies`, { target: 'config.model', policy: 'manual' })
    expect(set).toEqual({ status: 200, json: { policies: { 'config.model': 'manual' }, default: 'timestamp' } })
    expect((await daemon.api('POST', `/session/${sessionId}/policies`, { target: 'default', policy: 'merge' })).json.default).toBe('merge')
    expect((await daemon.api('GET', `/session/${sessionId}/policies`)).json).toEqual({ policies: { 'config.model': 'manual', default: 'merge' }, default: 'merge' })
    // One writer's writes follow each other: no conflict, whatever the policy.
    await daemon.api('PATCH', `/session/${sessionId}/config`, { model: 'one' })
    expect((await daemon.api('PATCH', `/session/${sessionId}/config`, { model: 'two' })).json).toMatchObject({ config: { model: 'two' }, conflicts: [] })
    await daemon.api('POST', `/session/${sessionId}/policies`, { target: 'config.model', policy: null })
    await daemon.api('POST', `/session/${sessionId}/policies`, { target: 'default', policy: null })
    expect((await daemon.api('GET', `/session/${sessionId}/policies`)).json).toEqual({ policies: {}, default: 'timestamp' })
  })
})

describe('the OpenAPI document', () => {
  it('is served without a token and describes every route, with every reference resolving', async () => {
    const response = await fetch(`${daemon.url}/openapi.json`)
    expect(response.status).toBe(200)
    const doc = (await response.json()) as { openapi: string; paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, unknown> } }
    expect(doc.openapi).toBe('3.1.0')
    for (const path of ['/session/{id}', '/session/{id}/sync', '/session/{id}/handoff', '/session/{id}/resume', '/session/{id}/events', '/sessions']) {
      expect(Object.keys(doc.paths)).toContain(path)
    }
    // The device routes, with the codes they refuse with.
    type Op = { operationId: string; responses: Record<string, { description: string }> }
    const ops = doc.paths as unknown as Record<string, Record<string, Op>>
    const removal = ops['/session/{id}/devices/{device}']?.delete
    expect(removal?.operationId).toBe('removeDevice')
    expect(Object.keys(removal!.responses)).toEqual(expect.arrayContaining(['200', '400', '403', '404', '409']))
    expect(removal!.responses['409']!.description).toContain('conflict')
    expect(ops['/session/{id}/invites/{invite}']?.delete?.operationId).toBe('cancelInvite')
    expect(ops['/session/{id}']?.delete?.operationId).toBe('leaveSession')
    expect(ops['/session/{id}/devices']?.get?.operationId).toBe('listDevices')
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!)
    expect(refs.length).toBeGreaterThan(20)
    for (const ref of refs) expect(doc.components.schemas, ref).toHaveProperty(ref)
  })
})

describe('the CLI on errors', () => {
  it('says what was wrong with the code, exits 1, and prints JSON with --json', async () => {
    const text = await runCli(daemon.dataDir, ['show', 'no-such-session'])
    expect(text.code).toBe(1)
    expect(text.stderr).toMatch(/^kai: not_found: no session no-such-session/)
    const json = await runCli(daemon.dataDir, ['--json', 'append', sessionId, '--role', 'robot', 'hi'])
    expect(json.code).toBe(1)
    expect(JSON.parse(json.stderr)).toMatchObject({ error: { code: 'invalid_input' } })
  })
})
