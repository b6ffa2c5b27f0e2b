import { afterAll, describe, expect, it } from 'vitest'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { ChildHandle } from '@kai-sync/process-harness'
import { eventually, kai, spawnCli, spawnDaemon, spawnKaiRelay, type DaemonProcess, type TestRelay } from './testing'

// Two daemons, two devices, one session, through the real relay (kai-relay,
// a child process that checks every capability and update against the
// roster). The second daemon joins through the seed's handoff: `kai handoff`
// on A, `kai resume <link>` on B.

const cleanups: Array<() => void> = []
afterAll(() => {
  for (const c of cleanups.reverse()) c()
})

const contents = async (daemon: DaemonProcess, sessionId: string): Promise<string[]> =>
  ((await daemon.api('GET', `/session/${sessionId}`)).json?.messages ?? []).map((m: { content: string }) => m.content)
const record = async (daemon: DaemonProcess, sessionId: string) => (await daemon.api('GET', `/session/${sessionId}`)).json
const summary = async (daemon: DaemonProcess, sessionId: string): Promise<{ sync: string; relay: string; role: string }> =>
  (await daemon.api('GET', '/sessions')).json.sessions.find((s: { session_id: string }) => s.session_id === sessionId)

describe('two daemons through kai-relay', () => {
  let relay: TestRelay
  let a: DaemonProcess
  let b: DaemonProcess
  let sessionId: string
  let tail: ChildHandle

  it('B resumes A\'s handoff link, then follows A with kai tail; writes cross both ways', async () => {
    relay = await spawnKaiRelay()
    cleanups.push(() => relay.cleanup())
    ;[a, b] = await Promise.all([spawnDaemon({ relayUrl: relay.url, label: 'daemon A' }), spawnDaemon({ relayUrl: relay.url, label: 'daemon B' })])
    cleanups.push(() => a.cleanup(), () => b.cleanup())

    sessionId = (await kai(a, 'create', '--agent', 'planner', '--user', 'ada')).trim()
    await kai(a, 'append', sessionId, 'written before B joined')
    // "synced" means the relay acknowledged storing it, not merely that a socket is open.
    await eventually(() => summary(a, sessionId), (s) => s.sync === 'synced' && s.relay === 'connected', 'A\'s session to be synced with the relay')

    const printed = await kai(a, 'handoff', sessionId, '--to', 'headless', '--type', 'mirror')
    const link = printed.split('\n').find((l) => l.startsWith('kai://resume#kai='))
    expect(link, printed).toBeDefined()
    const resumed = JSON.parse(await kai(b, '--json', 'resume', link!, '--label', 'daemon B')) as { session_id: string; messages: Array<{ content: string }> }
    expect(resumed.session_id).toBe(sessionId)
    expect(resumed.messages.map((m) => m.content)).toEqual(['written before B joined'])

    tail = spawnCli(b.dataDir, ['tail', sessionId])
    cleanups.push(() => void tail.kill9())
    await tail.waitFor((l) => l.includes('written before B joined'), 30_000, 'tail to show the history')
    await kai(a, 'append', sessionId, 'hello from A, live')
    await tail.waitFor((l) => l.includes('hello from A, live'), 30_000, 'tail on B to show the message appended on A')

    // And the other way: a reply streamed on B shows on A as one message.
    const started = await b.api('POST', `/session/${sessionId}/messages`, { id: 'reply', role: 'assistant', status: 'streaming', content: 'Streamed ' })
    expect(started.status).toBe(201)
    await b.api('POST', `/session/${sessionId}/messages/reply/stream`, { text: 'from B.', done: true })
    await tail.waitFor((l) => l.includes('Streamed from B.'), 30_000, 'tail to show the streamed reply')
    await eventually(() => contents(a, sessionId), (c) => c.includes('Streamed from B.'), 'A has B\'s reply')
    const [recordA, recordB] = await Promise.all([a.api('GET', `/session/${sessionId}`), b.api('GET', `/session/${sessionId}`)])
    expect(recordB.json.messages).toEqual(recordA.json.messages)
    const roster = (await a.api('GET', `/session/${sessionId}/devices`)).json.devices as Array<{ label: string; role: string }>
    expect(roster).toContainEqual(expect.objectContaining({ label: 'daemon B', role: 'writer' }))
    await eventually(() => summary(b, sessionId), (s) => s.sync === 'synced', 'B\'s session to be synced with the relay')
  })

  it('a daemon restart keeps everything, and the session syncs on', async () => {
    const before = (await b.api('GET', `/session/${sessionId}`)).json
    expect(await b.stop()).toBe(0)
    await kai(a, 'append', sessionId, 'A, while B was stopped')
    b = await b.restart()
    cleanups.push(() => b.cleanup())
    const after = await eventually(() => b.api('GET', `/session/${sessionId}`), (r) => r.json?.messages?.length === before.messages.length + 1, 'B to have A\'s message after its restart')
    expect(after.json.messages.slice(0, -1)).toEqual(before.messages)
    expect(after.json.messages.at(-1).content).toBe('A, while B was stopped')
    expect(await summary(b, sessionId)).toMatchObject({ role: 'writer' })
    // Still a writer after the restart: its key came back from its file.
    expect((await b.api('POST', `/session/${sessionId}/messages`, { role: 'user', content: 'B, after its restart' })).status).toBe(201)
    await eventually(() => contents(a, sessionId), (c) => c.includes('B, after its restart'), 'A has B\'s write after the restart')
    await tail.kill9()
    tail = spawnCli(b.dataDir, ['tail', sessionId])
    cleanups.push(() => void tail.kill9())
    await tail.waitFor((l) => l.includes('B, after its restart'), 30_000, 'tail to show the history after the restart')
  })

  it('with the relay stopped, writes are accepted on both; they sync when it returns on the same port and data', async () => {
    expect(await relay.stop()).toBe(0)
    await kai(a, 'append', sessionId, 'A, while the relay was down')
    expect((await b.api('POST', `/session/${sessionId}/messages`, { role: 'user', content: 'B, while the relay was down' })).status).toBe(201)
    await kai(a, 'config', 'set', sessionId, 'temperature', '0.1')
    // Stored on each disk, not acknowledged by any relay.
    expect(await summary(a, sessionId)).toMatchObject({ sync: 'saved' })
    expect(await summary(b, sessionId)).toMatchObject({ sync: 'saved' })
    // Nothing can have crossed: each holds only its own offline write.
    expect(await contents(a, sessionId)).not.toContain('B, while the relay was down')
    expect(await contents(b, sessionId)).not.toContain('A, while the relay was down')
    // B restarts while the relay is down: its offline write is kept, and still not claimed as synced.
    expect(await b.stop()).toBe(0)
    b = await b.restart()
    cleanups.push(() => b.cleanup())
    expect(await contents(b, sessionId)).toContain('B, while the relay was down')
    await new Promise((r) => setTimeout(r, 500))
    expect(await summary(b, sessionId)).toMatchObject({ sync: 'saved', relay: 'connecting' })
    // kai tail ended with the daemon it followed; follow the new one.
    await tail.exited
    tail = spawnCli(b.dataDir, ['tail', sessionId])
    cleanups.push(() => void tail.kill9())

    relay = await relay.restart()
    cleanups.push(() => relay.cleanup())
    const both = (c: string[]) => c.includes('A, while the relay was down') && c.includes('B, while the relay was down')
    await eventually(() => contents(a, sessionId), both, 'A has both offline writes')
    await eventually(() => contents(b, sessionId), both, 'B has both offline writes')
    await tail.waitFor((l) => l.includes('A, while the relay was down'), 30_000, 'tail on B to show A\'s offline write')
    const [recordA, recordB] = await eventually(
      () => Promise.all([a.api('GET', `/session/${sessionId}`), b.api('GET', `/session/${sessionId}`)]),
      ([x, y]) => JSON.stringify(x.json) === JSON.stringify(y.json),
      'the two records are identical',
    )
    expect(recordB.json.config.temperature).toBe(0.1)
    expect(recordB.json).toEqual(recordA.json)
    await eventually(() => summary(a, sessionId), (s) => s.sync === 'synced', 'A to be synced again')
    await eventually(() => summary(b, sessionId), (s) => s.sync === 'synced', 'B to be synced again')
  })

  it('a third daemon that asks to join before it is enrolled is refused by the relay, retries, and gets the whole session once A adds it', async () => {
    const c = await spawnDaemon({ relayUrl: relay.url, label: 'daemon C' })
    cleanups.push(() => c.cleanup())
    const identity = JSON.parse(await kai(c, '--json', 'device')) as { device: string; box: string }
    const joining = spawnCli(c.dataDir, ['--json', 'join', sessionId])
    cleanups.push(() => void joining.kill9())
    // Not in the roster: the relay waits its grace, then closes with 4403.
    await c.process.waitFor((l) => l.includes('"msg":"relay refused the connection"') && l.includes('"code":4403'), 30_000, 'the relay to refuse C')
    await kai(a, 'device', 'add', sessionId, identity.device, identity.box, '--label', 'daemon C')
    expect(await joining.exited).toBe(0)
    const joined = JSON.parse(joining.stdout.join('\n')) as { messages: unknown[] }
    const onA = await record(a, sessionId)
    expect(joined.messages).toEqual(onA.messages)
    expect((await c.api('POST', `/session/${sessionId}/messages`, { role: 'user', content: 'from C' })).status).toBe(201)
    await tail.waitFor((l) => l.includes('from C'), 30_000, 'tail on B to show C\'s message')
    c.cleanup()
  })

  it('left no secret in any output: no token, no key, no capability, no link', async () => {
    const secrets: string[] = []
    for (const daemon of [a, b]) {
      secrets.push(daemon.token)
      for (const file of ['device.json', 'box.json']) {
        const key = JSON.parse(readFileSync(join(daemon.dataDir, file), 'utf8')) as { pkcs8: string }
        secrets.push(key.pkcs8, key.pkcs8.slice(-43))
      }
      for (const file of readdirSync(join(daemon.dataDir, 'keys'))) {
        const keys = JSON.parse(readFileSync(join(daemon.dataDir, 'keys', file), 'utf8')) as { epochs: Array<{ key: string }> }
        secrets.push(...keys.epochs.map((e) => e.key))
      }
    }
    expect(secrets.length).toBeGreaterThanOrEqual(8)
    const output = [...a.output(), ...b.output(), ...tail.stdout, ...tail.stderr, ...relay.logs()].join('\n')
    // The daemons logged at debug level, relay states included.
    expect(output).toMatch(/"msg":"relay"/)
    for (const secret of secrets) expect(output).not.toContain(secret)
    // Every capability starts with the bytes "KSC" 0x01, "S1NDAQ" in base64url.
    expect(output).not.toMatch(/S1NDAQ|cap=|kai=/)
  })
})
