import { afterAll, describe, expect, it } from 'vitest'
import { WebCryptoDeviceKey, toBase64Url } from '@kai-sync/crypto'
import { signDelta } from './delta-signature'
import { DaemonClient, type SseEvent } from './cli/daemon-client'
import { eventually, kai, runCli, spawnDaemon, spawnKaiRelay, type DaemonProcess, type TestRelay } from './testing'

// The conflict policies of packages/model, as the API reports them: two
// daemons write `model` concurrently under `manual` while the relay is
// down; once it is back both report the same open conflict, in the
// record's `conflicts` and in /sync's answer; resolving it on one clears
// it on both. Under `user_choice`, the event stream asks its clients.

const cleanups: Array<() => void> = []
afterAll(() => {
  for (const c of cleanups.reverse()) c()
})

describe('a manual conflict between two daemons', () => {
  let relay: TestRelay
  let a: DaemonProcess
  let b: DaemonProcess
  let sessionId: string
  let client: WebCryptoDeviceKey

  const sync = async (daemon: DaemonProcess, delta: Record<string, unknown>) => {
    const d = { session_id: sessionId, device_id: 'agent-runtime', mode: 'headless', timestamp: Date.now(), ...delta }
    return daemon.api('POST', `/session/${sessionId}/sync`, { delta: d, signature: await signDelta(d, client) })
  }
  const record = async (daemon: DaemonProcess) => (await daemon.api('GET', `/session/${sessionId}`)).json

  it('is reported the same on both once they reconnect, by GET /session/:id and by /sync', async () => {
    relay = await spawnKaiRelay()
    cleanups.push(() => relay.cleanup())
    ;[a, b] = await Promise.all([spawnDaemon({ relayUrl: relay.url, label: 'daemon A' }), spawnDaemon({ relayUrl: relay.url, label: 'daemon B' })])
    cleanups.push(() => a.cleanup(), () => b.cleanup())
    sessionId = (await kai(a, 'create')).trim()
    expect(await kai(a, 'policy', 'set', sessionId, 'model', 'manual')).toContain('config.model = manual')
    const link = (await kai(a, 'handoff', sessionId, '--to', 'headless', '--type', 'mirror')).split('\n').find((l) => l.startsWith('kai://resume#'))!
    await kai(b, 'resume', link, '--label', 'daemon B')
    // The policy is part of the session: B has it from A.
    expect((await b.api('GET', `/session/${sessionId}/policies`)).json).toEqual({ policies: { 'config.model': 'manual' }, default: 'timestamp' })
    client = await WebCryptoDeviceKey.generate()
    expect((await b.api('POST', '/clients', { public_key: toBase64Url(client.publicKey), label: 'agent runtime' })).status).toBe(201)

    // Partitioned: each writes `model` without seeing the other's write.
    expect(await relay.stop()).toBe(0)
    expect((await a.api('PATCH', `/session/${sessionId}/config`, { model: 'model-from-a' })).json.conflicts).toEqual([])
    const offline = await sync(b, { config: { model: 'model-from-b' } })
    expect(offline.status).toBe(200)
    expect(offline.json).toEqual({ success: true })

    relay = await relay.restart()
    cleanups.push(() => relay.cleanup())
    const [onA, onB] = await Promise.all([
      eventually(() => record(a), (r) => r.conflicts.length === 1, 'A to report the conflict'),
      eventually(() => record(b), (r) => r.conflicts.length === 1, 'B to report the conflict'),
    ])
    const [conflict] = onA.conflicts
    expect(onB.conflicts).toEqual(onA.conflicts)
    expect(conflict).toMatchObject({ field: 'config.model', policy: 'manual' })
    expect(conflict.values.map((v: { value: string }) => v.value).sort()).toEqual(['model-from-a', 'model-from-b'])
    // The value shown until it is resolved is the same on both.
    expect(onB.config.model).toBe(onA.config.model)
    expect(conflict.visible).toBe(onA.config.model)

    // The seed's /sync answers with the open conflicts.
    const answered = await sync(b, { messages: [{ id: 'after-partition', role: 'assistant', content: 'still here', timestamp: Date.now() }] })
    expect(answered.json).toEqual({ success: true, conflicts: onA.conflicts })
    expect((await a.api('GET', `/session/${sessionId}/conflicts`)).json).toEqual({ conflicts: onA.conflicts })
  })

  it('resolving it on one daemon clears it on both, with the chosen value', async () => {
    const resolved = JSON.parse(await kai(a, '--json', 'conflicts', 'resolve', sessionId, 'model', 'model-from-b')) as { conflicts: unknown[] }
    expect(resolved.conflicts).toEqual([])
    const [onA, onB] = await Promise.all([
      eventually(() => record(a), (r) => r.conflicts.length === 0, 'A to clear the conflict'),
      eventually(() => record(b), (r) => r.conflicts.length === 0 && r.config.model === 'model-from-b', 'B to clear the conflict'),
    ])
    expect(onA.config.model).toBe('model-from-b')
    expect(onB.config).toEqual(onA.config)
    expect((await sync(b, { messages: [{ id: 'after-resolve', role: 'user', content: 'ok', timestamp: Date.now() }] })).json).toEqual({ success: true })
    // Nothing left to resolve: a stable code, not a silent write.
    const again = await b.api('POST', `/session/${sessionId}/conflicts/resolve`, { field: 'config.model', value: 'model-from-a' })
    expect(again.status).toBe(404)
    expect(again.json.error.code).toBe('not_found')
    const bad = await runCli(a.dataDir, ['policy', 'set', sessionId, 'model', 'coin_flip'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/invalid_input/)
  })

  it('under user_choice, the event stream asks its clients which value to keep, and the answer closes it everywhere', async () => {
    expect(await kai(a, 'policy', 'set', sessionId, 'model', 'user_choice')).toContain('config.model = user_choice')
    await eventually(() => b.api('GET', `/session/${sessionId}/policies`), (r) => r.json.policies['config.model'] === 'user_choice', 'B to have the policy')
    const follow = (daemon: DaemonProcess) => {
      const events: SseEvent[] = []
      const abort = new AbortController()
      const done = new DaemonClient({ dataDir: daemon.dataDir }).events(`/session/${sessionId}/events`, (e) => events.push(e), abort.signal)
      cleanups.push(() => abort.abort())
      return { events, stop: async () => (abort.abort(), await done) }
    }
    const onA = follow(a)
    await eventually(async () => onA.events, (e) => e.some((x) => x.event === 'ready'), 'the stream to open')

    expect(await relay.stop()).toBe(0)
    await a.api('PATCH', `/session/${sessionId}/config`, { model: 'choice-a' })
    await b.api('PATCH', `/session/${sessionId}/config`, { model: 'choice-b' })
    relay = await relay.restart()
    cleanups.push(() => relay.cleanup())

    const asked = await eventually(async () => onA.events.filter((e) => e.event === 'choice'), (c) => c.length === 1, 'A to ask its client')
    const choice = asked[0]!.data as { field: string; policy: string; values: { value: string }[] }
    expect(choice).toMatchObject({ field: 'config.model', policy: 'user_choice' })
    expect(choice.values.map((v) => v.value).sort()).toEqual(['choice-a', 'choice-b'])
    expect(onA.events.some((e) => e.event === 'conflicts' && (e.data as { conflicts: unknown[] }).conflicts.length === 1)).toBe(true)
    // A client that connects later is asked too, once.
    const late = follow(a)
    await eventually(async () => late.events.filter((e) => e.event === 'choice'), (c) => c.length === 1, 'a late client to be asked')
    await late.stop()

    // The answer, from any device, closes the conflict; A's stream says so.
    expect((await b.api('POST', `/session/${sessionId}/conflicts/resolve`, { field: 'config.model', value: 'choice-a' })).status).toBe(200)
    await eventually(() => record(a), (r) => r.conflicts.length === 0 && r.config.model === 'choice-a', 'A to clear the conflict')
    expect(onA.events.some((e) => e.event === 'conflicts' && (e.data as { conflicts: unknown[] }).conflicts.length === 0)).toBe(true)
    // Nothing is waiting for an answer any more: a new client is not asked.
    const after = follow(a)
    await eventually(async () => after.events, (e) => e.some((x) => x.event === 'ready'), 'the stream to open')
    await new Promise((r) => setTimeout(r, 300))
    expect(after.events.filter((e) => e.event === 'choice')).toEqual([])
    await after.stop()
    expect(onA.events.filter((e) => e.event === 'choice')).toHaveLength(1)
    await onA.stop()
  })
})
