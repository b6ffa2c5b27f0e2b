import { afterEach, describe, expect, it, vi } from 'vitest'
import {  } from '@kai-sync/crypto'
import { NobleDeviceKey } from '@kai-sync/crypto/noble'
import { Presence, type SyncEngine } from '@kai-sync/engine'
import { SimNetwork, addReplica, createSimSession, seededRandom, settle, type Replica } from '@kai-sync/engine/testing'
import { resumeStream, streamInto, type ReplySession } from './demo-agent'

// The demo agent against real engines on a simulated network (the
// Chromium test in tests/takeover.test.ts drives the same through the app
// and a real relay). Presence here is the engine's own, unshared: these
// tests look at what each device itself claims.

const cleanup: Array<() => void> = []
afterEach(() => {
  for (const f of cleanup.splice(0)) f()
})

const TEXT = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ')

/** A session as the demo agent sees it: the engine, its presence, volatile state published there. */
function replySession(engine: SyncEngine): ReplySession & { presence: Presence } {
  const presence = new Presence(engine, { mode: 'tab' })
  cleanup.push(() => presence.destroy())
  return {
    engine,
    presence,
    open: true,
    setVolatile: (patch) => presence.publish({ volatile: patch }),
    whenSaved: () => engine.whenIdle(),
  }
}

async function world() {
  const net = new SimNetwork(seededRandom(3).gen, { reorder: 0, drop: 0, duplicate: 0 })
  const s = await createSimSession(net, { compactAfter: null })
  cleanup.push(() => s.owner.engine.destroy())
  const add = async (role: 'writer' | null) => {
    const r = await addReplica(net, s, { compactAfter: null, role })
    cleanup.push(() => r.engine.destroy())
    return r
  }
  // Keeps messages moving, as a relay would, except to and from nodes taken offline.
  const pump = setInterval(() => net.flush(), 2)
  cleanup.push(() => clearInterval(pump))
  return { net, s, add, settle: () => settle(net, s.replicas) }
}

async function until(done: () => boolean, ms = 10_000): Promise<void> {
  const start = Date.now()
  while (!done()) {
    if (Date.now() - start > ms) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 10))
  }
}

const contentOf = (r: Replica) => r.engine.session.message('reply')?.content ?? ''

describe('the demo agent', () => {
  it('a write that throws mid-reply ends the claim (no "replying" for ever) and says why', async () => {
    const { s } = await world()
    const session = replySession(s.owner.engine)
    s.owner.engine.session.startStream({ id: 'reply', role: 'assistant' })
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined)
    cleanup.push(() => warn.mockRestore())
    const streaming = streamInto(session, 'reply', TEXT)
    await until(() => contentOf(s.owner).length > 20)
    expect(session.presence.state.volatile.streaming?.message_id).toBe('reply')
    // The next write throws (the session doc refuses it), while the device still may write.
    s.owner.engine.session.readOnly = true
    expect(await streaming).toEqual({ outcome: 'failed', code: 'forbidden' })
    expect(session.presence.state.volatile.streaming).toBeNull()
    expect(session.presence.state.volatile.active_tools).toEqual([])
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('forbidden'), expect.anything())
  })

  it('a takeover mid-reply: the source stops before it steps down and drops its claim; the target finishes the exact text', async () => {
    const { s, add, settle } = await world()
    const source = replySession(s.owner.engine)
    const phone = await add(null)
    s.owner.engine.session.startStream({ id: 'reply', role: 'assistant' })
    const { invite } = await s.owner.engine.createInvite('takeover')
    await settle()
    const streaming = streamInto(source, 'reply', TEXT)
    await until(() => contentOf(s.owner).length > 40)
    await phone.engine.enrollWithInvite(await NobleDeviceKey.fromSecret(invite.exportSecret()), 'writer', 'phone')
    expect(await streaming).toEqual({ outcome: 'handed_on' })
    expect(source.presence.state.volatile.streaming).toBeNull()
    expect(source.presence.state.volatile.active_tools).toEqual([])
    await settle()
    expect(s.owner.engine.role).toBe('reader')
    // Everything the source wrote counts: it wrote nothing after its step-down.
    expect(phone.engine.status.refused).toBe(0)
    const handedOver = contentOf(phone)
    expect(handedOver).toBe(contentOf(s.owner))
    expect(handedOver.length).toBeLessThan(TEXT.length)
    expect(TEXT.startsWith(handedOver)).toBe(true)

    // The target holds the buffer (the handoff carried it) and continues from where the reply is.
    const target = replySession(phone.engine)
    await target.setVolatile({ streaming: { message_id: 'reply', buffer: TEXT }, active_tools: [] })
    cleanup.push(resumeStream(target))
    await until(() => phone.engine.session.message('reply')?.status === 'complete')
    expect(contentOf(phone)).toBe(TEXT)
    await settle()
    expect(contentOf(s.owner)).toBe(TEXT)
    expect(target.presence.state.volatile.streaming).toBeNull()
  })

  it('the target waits for the device it took over from to step down (all it wrote comes before), then finishes the reply', async () => {
    const { net, s, add, settle } = await world()
    const phone = await add(null)
    s.owner.engine.session.startStream({ id: 'reply', role: 'assistant' })
    s.owner.engine.session.streamText('reply', TEXT.slice(0, 30))
    const { invite } = await s.owner.engine.createInvite('takeover')
    await settle()
    // The source is cut off before the enrollment reaches it: it has not stepped down.
    net.goOffline(s.owner.node)
    await phone.engine.enrollWithInvite(await NobleDeviceKey.fromSecret(invite.exportSecret()), 'writer', 'phone')
    expect(s.owner.engine.roster.roleOf(phone.device.publicKey)).toBeUndefined()
    const target = replySession(phone.engine)
    await target.setVolatile({ streaming: { message_id: 'reply', buffer: TEXT }, active_tools: [] })
    cleanup.push(resumeStream(target))
    await new Promise((r) => setTimeout(r, 2_000))
    expect(contentOf(phone)).toBe(TEXT.slice(0, 30))

    await settle()
    expect(s.owner.engine.role).toBe('reader')
    await until(() => phone.engine.session.message('reply')?.status === 'complete')
    expect(contentOf(phone)).toBe(TEXT)
  })

  it('a stop request from another writer device ends the reply stopped, its text so far kept, and drops the claim', async () => {
    const { s, add, settle } = await world()
    const other = await add('writer')
    const session = replySession(s.owner.engine)
    s.owner.engine.session.startStream({ id: 'reply', role: 'assistant' })
    await settle()
    const streaming = streamInto(session, 'reply', TEXT)
    await until(() => contentOf(other).length > 20)
    other.engine.session.requestControl('stop', 'reply')
    const asked = Date.now()
    expect(await streaming).toEqual({ outcome: 'stopped' })
    expect(Date.now() - asked).toBeLessThan(2_000)
    await settle()
    for (const r of [s.owner, other]) expect(r.engine.session.message('reply')?.status).toBe('stopped')
    const kept = contentOf(other)
    expect(kept.length).toBeGreaterThan(20)
    expect(kept.length).toBeLessThan(TEXT.length)
    expect(TEXT.startsWith(kept)).toBe(true)
    expect(session.presence.state.volatile.streaming).toBeNull()
  })
})
