import { afterAll, describe, expect, it } from 'vitest'
import { eventually, kai, runCli, spawnDaemon, spawnKaiRelay, type DaemonProcess, type TestRelay } from './testing'

// The seed's handoff between two daemons: `kai handoff` on the source prints
// the QR code and link, `kai resume` on the target accepts it, through the
// real relay (kai-relay, a child process), which burns the token, admits
// the target and checks every write against the roster.

const cleanups: Array<() => void> = []
afterAll(() => {
  for (const c of cleanups.reverse()) c()
})

describe('handoff between two daemons', () => {
  let relay: TestRelay
  let a: DaemonProcess
  let b: DaemonProcess

  it('takeover: the target continues the session, the source becomes read-only and says where it went', async () => {
    relay = await spawnKaiRelay()
    cleanups.push(() => relay.cleanup())
    ;[a, b] = await Promise.all([spawnDaemon({ relayUrl: relay.url, label: 'laptop daemon' }), spawnDaemon({ relayUrl: relay.url, label: 'server daemon' })])
    cleanups.push(() => a.cleanup(), () => b.cleanup())
    const sessionId = (await kai(a, 'create')).trim()
    await kai(a, 'append', sessionId, 'before the handoff')
    await a.api('POST', `/session/${sessionId}/messages`, { id: 'half', role: 'assistant', status: 'streaming', content: 'half a reply' })

    const printed = await kai(a, 'handoff', sessionId, '--to', 'headless', '--type', 'takeover')
    const link = printed.split('\n').find((l) => l.startsWith('kai://resume#kai='))
    expect(link, printed).toBeDefined()
    expect(printed).toContain('kai resume') // the instructions for a headless target
    expect(printed).toMatch(/[█▀▄]/) // the QR code, in block characters

    const resumed = JSON.parse(await kai(b, '--json', 'resume', link!, '--label', 'server daemon')) as { session_id: string; messages: Array<{ id: string; content: string; status: string }> }
    expect(resumed.session_id).toBe(sessionId)
    expect(resumed.messages.map((m) => m.content)).toEqual(['before the handoff', 'half a reply'])
    // The half-streamed reply continues on the target.
    const continued = await b.api('POST', `/session/${sessionId}/messages/half/stream`, { text: ', finished on the server.', done: true })
    expect(continued.json).toMatchObject({ content: 'half a reply, finished on the server.', status: 'complete' })

    // The source steps down once it sees the target's enrolment.
    const moved = await eventually(async () => (await a.api('GET', '/sessions')).json.sessions[0], (s) => s.moved_to !== undefined, 'the source to step down')
    expect(moved).toMatchObject({ role: 'reader', moved_to: { label: 'server daemon' } })
    const refused = await a.api('POST', `/session/${sessionId}/messages`, { role: 'user', content: 'after the handoff' })
    expect(refused.status).toBe(403)
    expect(refused.json.error.message).toContain('moved to server daemon')
    const onA = await eventually(async () => (await a.api('GET', `/session/${sessionId}`)).json, (r) => r.messages.some((m: { status: string; id: string }) => m.id === 'half' && m.status === 'complete'), 'A to see the finished reply')
    expect(onA.audit.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(['handoff.initiated', 'handoff.accepted', 'handoff.completed']))

    // A daemon holds a session once.
    const again = await runCli(b.dataDir, ['resume', link!])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/conflict: this daemon already holds this session/)

    // The link's fragment (invite secret and session keys) reached no log.
    const fragment = link!.split('#')[1]!
    const logs = [...a.output(), ...b.output()].join('\n')
    expect(logs).toContain('handoff accepted')
    expect(logs).not.toContain(fragment.slice(4, 60))
  })
})

