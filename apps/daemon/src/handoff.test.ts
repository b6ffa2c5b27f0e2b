import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { WebCryptoDeviceKey, ZERO_HASH, toBase64Url, newStreamId, sealEnvelope } from '@kai-sync/crypto'
import { capabilityToParam, signCapability } from '@kai-sync/crypto/capability'
import { WireDoc } from '@kai-sync/engine'
import { connectRelay } from '@kai-sync/providers'
import { DataDir } from './data-dir'
import { signDelta } from './delta-signature'
import { loadOrCreateDeviceKeys, loadSessionKeys } from './key-files'
import { eventually, kai, runCli, spawnCli, spawnDaemon, spawnKaiRelay, type DaemonProcess, type TestRelay } from './testing'

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
    // The source claims the reply it streams, a tool and a draft: the volatile state the handoff carries.
    const volatile = { streaming: { message_id: 'half', buffer: 'half a reply, finished on the server.' }, active_tools: ['writer'], ui_state: { draft: 'and then', drawer: 'notes' } }
    const client = await WebCryptoDeviceKey.generate()
    expect((await a.api('POST', '/clients', { public_key: toBase64Url(client.publicKey), label: 'agent runtime' })).status).toBe(201)
    const delta = { session_id: sessionId, device_id: 'agent-runtime', mode: 'headless', timestamp: Date.now(), volatile }
    const synced = await a.api('POST', `/session/${sessionId}/sync`, { delta, signature: await signDelta(delta, client) })
    expect(synced.status, JSON.stringify(synced.json)).toBe(200)

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
    // The source's claims ended with its step-down; what is not a claim (the open drawer) stays.
    expect((await a.api('GET', `/session/${sessionId}`)).json.volatile).toMatchObject({ streaming: null, active_tools: [], ui_state: { drawer: 'notes' } })
    expect((await a.api('GET', `/session/${sessionId}`)).json.volatile.ui_state.draft).toBeUndefined()
    const refused = await a.api('POST', `/session/${sessionId}/messages`, { role: 'user', content: 'after the handoff' })
    expect(refused.status).toBe(403)
    expect(refused.json.error.message).toContain('moved to server daemon')
    const onA = await eventually(async () => (await a.api('GET', `/session/${sessionId}`)).json, (r) => r.messages.some((m: { status: string; id: string }) => m.id === 'half' && m.status === 'complete'), 'A to see the finished reply')
    expect(onA.audit.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(['handoff.initiated', 'handoff.accepted', 'handoff.completed']))

    // A daemon holds a session once.
    const again = await runCli(b.dataDir, ['resume', link!])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/conflict: this daemon already holds this session/)

    // The link's fragment (the invite secret) reached no log.
    const fragment = link!.split('#')[1]!
    const logs = [...a.output(), ...b.output()].join('\n')
    expect(logs).toContain('handoff accepted')
    expect(logs).not.toContain(fragment.slice(4, 60))
  })

  it('mirror: both daemons stay writers and converge', async () => {
    const c = await spawnDaemon({ relayUrl: relay.url, label: 'mirror daemon' })
    cleanups.push(() => c.cleanup())
    const sessionId = (await kai(b, 'create')).trim()
    await kai(b, 'append', sessionId, 'from the source')
    const link = linkOf(await kai(b, 'handoff', sessionId, '--to', 'headless', '--type', 'mirror'))
    // Read from stdin, not argv: the link never shows in shell history or ps.
    const fromStdin = await runCli(c.dataDir, ['resume', '-', '--label', 'mirror daemon'], { stdin: `${link}\n` })
    expect(fromStdin.code, fromStdin.stderr).toBe(0)
    expect(fromStdin.stdout).toContain(`resumed ${sessionId}`)
    // Used: another daemon is told so, once, naming its code once; from a file this time.
    const file = join(a.dataDir, 'link.txt')
    writeFileSync(file, link)
    const late = await runCli(a.dataDir, ['resume', '--file', file])
    expect(late.code).toBe(1)
    expect(late.stderr.trim()).toBe('kai: already_used: this handoff link was used already; start a new handoff')
    await kai(c, 'append', sessionId, 'from the mirror')
    await kai(b, 'append', sessionId, 'from the source, again')
    const all = ['from the source', 'from the mirror', 'from the source, again']
    const has = (r: { messages?: Array<{ content: string }> }) => all.every((t) => r.messages?.some((m) => m.content === t))
    const [onB, onC] = await Promise.all([
      eventually(async () => (await b.api('GET', `/session/${sessionId}`)).json, has, 'the source to have every message'),
      eventually(async () => (await c.api('GET', `/session/${sessionId}`)).json, has, 'the mirror to have every message'),
    ])
    expect(onC.messages).toEqual(onB.messages)
    const roles = (await b.api('GET', '/sessions')).json.sessions.find((x: { session_id: string }) => x.session_id === sessionId)
    expect(roles).toMatchObject({ role: 'owner' })
    expect(roles.moved_to).toBeUndefined()
    const roster = (await c.api('GET', `/session/${sessionId}/devices`)).json.devices
    expect(roster).toContainEqual(expect.objectContaining({ label: 'mirror daemon', role: 'writer' }))
  })

  it('observe: the observer follows live; its writes are refused by the daemon (403 forbidden) and by the relay (4403)', async () => {
    const o = await spawnDaemon({ relayUrl: relay.url, label: 'observer daemon' })
    cleanups.push(() => o.cleanup())
    const sessionId = (await kai(b, 'create')).trim()
    await kai(b, 'append', sessionId, 'before the observer came')
    const link = linkOf(await kai(b, 'handoff', sessionId, '--to', 'headless', '--type', 'observe'))
    const resumed = JSON.parse(await kai(o, '--json', 'resume', link, '--label', 'observer daemon')) as { messages: Array<{ content: string }> }
    expect(resumed.messages.map((m) => m.content)).toEqual(['before the observer came'])
    const tail = spawnCli(o.dataDir, ['tail', sessionId])
    cleanups.push(() => void tail.kill9())
    await kai(b, 'append', sessionId, 'watched live')
    await tail.waitFor((l) => l.includes('watched live'), 30_000, 'tail on the observer to show the source\'s message')

    // The daemon refuses before anything is sealed, with a stable code and what to do.
    const refused = await o.api('POST', `/session/${sessionId}/messages`, { role: 'user', content: 'an observer writing' })
    expect(refused.status).toBe(403)
    expect(refused.json.error.code).toBe('forbidden')
    expect(refused.json.error.message).toMatch(/observer|read/)
    const cli = await runCli(o.dataDir, ['append', sessionId, 'an observer writing'])
    expect(cli.code).toBe(1)
    expect(cli.stderr).toMatch(/forbidden/)
    expect((await o.api('GET', '/sessions')).json.sessions[0]).toMatchObject({ role: 'reader' })

    // The relay refuses it too: an envelope validly sealed and signed with the
    // observer's own keys (read from its files), sent straight to the relay.
    const dir = new DataDir(o.dataDir)
    const { device } = await loadOrCreateDeviceKeys(dir)
    const [key] = await loadSessionKeys(dir, sessionId)
    const envelope = await sealEnvelope({
      header: { kind: 'update', sessionId, stream: newStreamId(), seq: 1, prev: ZERO_HASH, createdAt: Date.now(), clientIds: [], covers: [] },
      plaintext: new Uint8Array([0, 0]),
      key: key!,
      signer: device,
    })
    const wire = new WireDoc()
    const direct = await connectRelay(wire, relay.url, async () => capabilityToParam(await signCapability({ room: sessionId }, device)))
    cleanups.push(() => direct.destroy())
    await direct.whenSynced(20_000)
    const closed = new Promise<{ code: number; reason: string }>((resolve) => direct.on('closed', resolve))
    wire.append([envelope.bytes], 'test')
    const refusal = await closed
    expect(refusal.code).toBe(4403)
    expect(refusal.reason).toMatch(/a device that may not write in this session/)
    direct.destroy()
    expect(relay.logs().join('\n')).toMatch(/"code":4403/)
    // Nothing of it reached the source.
    const onB = (await b.api('GET', `/session/${sessionId}`)).json
    expect(onB.messages.map((m: { content: string }) => m.content)).toEqual(['before the observer came', 'watched live'])
  })

  it('a handoff asked for before the relay holds the session waits for it, rather than being refused (403) or failing', async () => {
    // The relay files a token only from a device in its copy of the roster.
    // A session made while the relay is away reaches it only once it is back.
    await relay.stop()
    const sessionId = (await kai(b, 'create')).trim()
    const asked = b.api('POST', `/session/${sessionId}/handoff`, { session_id: sessionId, source_mode: 'headless', target_mode: 'headless', transfer_type: 'mirror' })
    await new Promise((r) => setTimeout(r, 1500))
    relay = await relay.restart()
    cleanups.push(() => relay.cleanup())
    const res = await asked
    expect(res.status, JSON.stringify(res.json)).toBe(200)
    expect(res.json.resume_url).toContain('#kai=')
  })
})

function linkOf(printed: string): string {
  const link = printed.split('\n').find((l) => l.startsWith('kai://resume#kai='))
  if (!link) throw new Error(`no resume link in:\n${printed}`)
  return link
}
