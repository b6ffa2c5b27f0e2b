import { afterAll, describe, expect, it } from 'vitest'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { eventually, kai, spawnCli, spawnDaemon, spawnStockRelay, type ChildHandle, type DaemonProcess, type TestRelay } from './testing'

// Two daemons, two devices, one session, through a real relay process.
// Until kai-relay lands this is the stock y-websocket relay; to run against
// kai-relay, replace spawnStockRelay with its spawnRelay (same handle shape).
// The second daemon is enrolled by its public keys (kai device add / kai
// join), not through a handoff: the relay's handoff endpoints are not here yet.

const cleanups: Array<() => void> = []
afterAll(() => {
  for (const c of cleanups.reverse()) c()
})

const contents = async (daemon: DaemonProcess, sessionId: string): Promise<string[]> =>
  ((await daemon.api('GET', `/session/${sessionId}`)).json?.messages ?? []).map((m: { content: string }) => m.content)

describe('two daemons through a relay', () => {
  let relay: TestRelay
  let a: DaemonProcess
  let b: DaemonProcess
  let sessionId: string
  let tail: ChildHandle

  it('enroll the second daemon, which then follows the first with kai tail', async () => {
    relay = await spawnStockRelay()
    cleanups.push(() => relay.cleanup())
    ;[a, b] = await Promise.all([spawnDaemon({ relayUrl: relay.url, label: 'daemon A' }), spawnDaemon({ relayUrl: relay.url, label: 'daemon B' })])
    cleanups.push(() => a.cleanup(), () => b.cleanup())

    sessionId = (await kai(a, 'create', '--agent', 'planner', '--user', 'ada')).trim()
    await kai(a, 'append', sessionId, 'written before B joined')
    const identity = JSON.parse(await kai(b, '--json', 'device')) as { device: string; box: string }
    await kai(a, 'device', 'add', sessionId, identity.device, identity.box, '--label', 'daemon B')
    const joined = JSON.parse(await kai(b, '--json', 'join', sessionId)) as { messages: Array<{ content: string }> }
    expect(joined.messages.map((m) => m.content)).toEqual(['written before B joined'])

    tail = spawnCli(b.dataDir, ['tail', sessionId])
    cleanups.push(() => void tail.kill9())
    await tail.waitFor((l) => l.includes('written before B joined'), 30_000, 'tail to show the history')
    await kai(a, 'append', sessionId, 'hello from A, live')
    await tail.waitFor((l) => l.includes('hello from A, live'), 30_000, 'tail on B to show the message appended on A')

    // And the other way, a reply streamed on B shows on A as one message.
    const started = await b.api('POST', `/session/${sessionId}/messages`, { id: 'reply', role: 'assistant', status: 'streaming', content: 'Streamed ' })
    expect(started.status).toBe(201)
    await b.api('POST', `/session/${sessionId}/messages/reply/stream`, { text: 'from B.', done: true })
    await tail.waitFor((l) => l.includes('Streamed from B.'), 30_000, 'tail to show the streamed reply')
    await eventually(() => contents(a, sessionId), (c) => c.includes('Streamed from B.'), 'A has B\'s reply')
    const [recordA, recordB] = await Promise.all([a.api('GET', `/session/${sessionId}`), b.api('GET', `/session/${sessionId}`)])
    expect(recordB.json.messages).toEqual(recordA.json.messages)
    const roster = (await a.api('GET', `/session/${sessionId}/devices`)).json.devices as Array<{ device: string; role: string }>
    expect(roster).toContainEqual(expect.objectContaining({ device: identity.device, role: 'writer' }))
  })

  it('with the relay stopped, writes are accepted on both; they sync when it returns', async () => {
    await relay.stop()
    await kai(a, 'append', sessionId, 'A, while the relay was down')
    expect((await b.api('POST', `/session/${sessionId}/messages`, { role: 'user', content: 'B, while the relay was down' })).status).toBe(201)
    await kai(a, 'config', 'set', sessionId, 'temperature', '0.1')
    // Nothing can have crossed: each holds only its own offline write.
    expect(await contents(a, sessionId)).not.toContain('B, while the relay was down')
    expect(await contents(b, sessionId)).not.toContain('A, while the relay was down')

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
  })

  it('left no secret in either daemon\'s output: no token, no key, no capability', async () => {
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
    const output = [...a.output(), ...b.output(), ...tail.stdout, ...tail.stderr].join('\n')
    // The daemons logged at debug level, relay states included.
    expect(output).toMatch(/"msg":"relay"/)
    for (const secret of secrets) expect(output).not.toContain(secret)
    // Every capability starts with the bytes "KSC" 0x01, "S1NDAQ" in base64url.
    expect(output).not.toMatch(/S1NDAQ|cap=/)
  })
})
