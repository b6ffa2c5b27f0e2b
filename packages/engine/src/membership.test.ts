import * as Y from 'yjs'
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest'
import { NobleDeviceKey, SessionKeyring } from '@kai-sync/crypto'
import { SimNetwork, addReplica, assertConverged, createSimSession, seededRandom, settle, type Replica } from './testing'
import type { MovedControl } from './membership'
import { INVITE_LIFETIME_MS } from './roster'
import { SyncEngine } from './sync-engine'
import { WireDoc } from './wire-doc'

const replicas: Replica[] = []
afterEach(() => {
  for (const r of replicas.splice(0)) r.engine.destroy()
})

async function session(now?: () => number) {
  const net = new SimNetwork(seededRandom(5).gen, { reorder: 0, drop: 0, duplicate: 0 })
  const s = await createSimSession(net, { compactAfter: null, ...(now ? { now } : {}) })
  replicas.push(s.owner)
  const add = async (options: Parameters<typeof addReplica>[2] = {}) => {
    const r = await addReplica(net, s, { compactAfter: null, ...options })
    replicas.push(r)
    return r
  }
  return { net, s, add, settle: () => settle(net, s.replicas) }
}

/** The handoff's target: a device nobody enrolled, holding the invite from the link. */
async function enrollThrough(invite: NobleDeviceKey, target: Replica, role: 'writer' | 'reader', label: string): Promise<void> {
  await target.engine.enrollWithInvite(NobleDeviceKey.fromSecret(invite.exportSecret()), role, label)
}

describe('handoff invites', () => {
  it('observe: the invite enrolls one reader, once', async () => {
    const { s, add, settle } = await session()
    const { invite } = await s.owner.engine.createInvite('observe')
    const phone = await add({ role: null, mode: 'mobile' })
    const thief = await add({ role: null })
    await settle()
    await expect(enrollThrough(invite, phone, 'writer', 'phone')).rejects.toMatchObject({ code: 'forbidden' })
    await enrollThrough(invite, phone, 'reader', 'phone (mobile)')
    await settle()
    expect(s.owner.engine.roster.roleOf(phone.device.publicKey)).toBe('reader')
    await expect(enrollThrough(invite, thief, 'reader', 'thief')).rejects.toMatchObject({ code: 'forbidden' })
    await settle()
    expect(s.owner.engine.roster.roleOf(thief.device.publicKey)).toBeUndefined()
    expect(() => phone.engine.session.appendMessage({ id: 'x', role: 'user', content: 'no' })).toThrow(/forbidden/)
  })

  it('mirror: the target writes beside the source', async () => {
    const { s, add, settle } = await session()
    const { invite } = await s.owner.engine.createInvite('mirror')
    const tablet = await add({ role: null })
    await settle()
    await enrollThrough(invite, tablet, 'writer', 'tablet')
    tablet.engine.session.appendMessage({ id: 'from-tablet', role: 'user', content: 'written on the tablet' })
    s.owner.engine.session.appendMessage({ id: 'from-laptop', role: 'user', content: 'written on the laptop' })
    tablet.appended.add('from-tablet')
    s.owner.appended.add('from-laptop')
    await settle()
    assertConverged(s.replicas)
    expect(s.owner.engine.canWrite && tablet.engine.canWrite).toBe(true)
  })

  it('takeover: the source says where the session went and becomes read-only; what it wrote stands', async () => {
    const { s, add, settle } = await session()
    const watcher = await add({ role: 'reader' })
    await settle()
    s.owner.engine.session.appendMessage({ id: 'before', role: 'user', content: 'written before the handoff' })
    s.owner.appended.add('before')
    const { invite } = await s.owner.engine.createInvite('takeover')
    const phone = await add({ role: null, mode: 'mobile' })
    await settle()
    const movedAtSource: MovedControl[] = []
    const movedAtWatcher: MovedControl[] = []
    s.owner.engine.on('moved', (to) => movedAtSource.push(to))
    watcher.engine.on('moved', (to) => movedAtWatcher.push(to))
    await enrollThrough(invite, phone, 'writer', 'Pixel (mobile)')
    await settle()
    expect(s.owner.engine.role).toBe('reader')
    expect(() => s.owner.engine.session.appendMessage({ id: 'after', role: 'user', content: 'x' })).toThrow(/forbidden/)
    expect(movedAtSource).toEqual([expect.objectContaining({ type: 'moved', label: 'Pixel (mobile)' })])
    expect(movedAtWatcher).toEqual(movedAtSource)
    phone.engine.session.appendMessage({ id: 'on-phone', role: 'user', content: 'continued on the phone' })
    phone.appended.add('on-phone')
    await settle()
    assertConverged(s.replicas)
  })

  it('an invite used outside its window enrolls nobody', async () => {
    const { s, add, settle } = await session()
    const { invite } = await s.owner.engine.createInvite('mirror')
    const late = await add({ role: null, now: () => Date.now() + 20 * 60 * 1000 })
    await settle()
    await expect(enrollThrough(invite, late, 'writer', 'late')).rejects.toMatchObject({ code: 'forbidden' })
  })

  it('a reader cannot create invites', async () => {
    const { add, settle } = await session()
    const reader = await add({ role: 'reader' })
    await settle()
    await expect(reader.engine.createInvite('mirror')).rejects.toMatchObject({ code: 'forbidden' })
  })
})

describe('invites that expire', () => {
  it('an invite that expired while its issuer was closed is retired at open; a later enrollment enrolls nobody, one signed in time still counts', async () => {
    let clock = Date.now()
    const now = () => clock
    const { net, s, add, settle } = await session(now)
    const { invite } = await s.owner.engine.createInvite('mirror')
    const early = await add({ role: null, now })
    const late = await add({ role: null, now })
    await settle()
    // Signed within the lifetime, but it reaches nobody until later.
    net.goOffline(early.node)
    clock += 60_000
    await enrollThrough(invite, early, 'writer', 'early')
    s.owner.engine.destroy()
    clock += INVITE_LIFETIME_MS
    // The issuer opens again (no relay burns anything here) and retires the invite.
    const copy = new Y.Doc()
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(s.owner.engine.wire.doc))
    const reopened = await SyncEngine.open({ sessionId: s.sessionId, wire: new WireDoc(copy), device: s.owner.device, box: s.owner.box, keys: new SessionKeyring([s.key]), mode: 'desktop', compactAfter: null, now })
    onTestFinished(() => reopened.destroy())
    net.connect(net.add('r0-reopened', copy), s.hub)
    await reopened.whenIdle()
    expect(reopened.roster.roleOf(invite.publicKey)).toBe('removed')
    await settle(s.replicas.filter((r) => r !== s.owner))
    await expect(enrollThrough(invite, late, 'writer', 'late')).rejects.toMatchObject({ code: 'forbidden' })
    await settle(s.replicas.filter((r) => r !== s.owner))
    await reopened.whenIdle()
    for (const engine of [reopened, early.engine, late.engine]) {
      expect(engine.roster.roleOf(early.device.publicKey)).toBe('writer')
      expect(engine.roster.roleOf(late.device.publicKey)).toBeUndefined()
    }
  })

  it('a running issuer retires its unspent invite when the lifetime passes', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    onTestFinished(() => vi.useRealTimers())
    let clock = Date.now()
    const now = () => clock
    const { s, add, settle } = await session(now)
    const { invite } = await s.owner.engine.createInvite('observe')
    const late = await add({ role: null, now })
    await settle()
    // Entries are issued after the latest one seen, so the invite may be a few ms ahead of the clock.
    clock += INVITE_LIFETIME_MS + 1000
    await vi.advanceTimersByTimeAsync(INVITE_LIFETIME_MS + 1000)
    await settle()
    expect(late.engine.roster.roleOf(invite.publicKey)).toBe('removed')
    await expect(enrollThrough(invite, late, 'reader', 'late')).rejects.toMatchObject({ code: 'forbidden' })
  })

  it('cancelInvite retires an invite now; only its issuer or the owner may, once', async () => {
    const { s, add, settle } = await session()
    const writer = await add()
    const target = await add({ role: null })
    await settle()
    const { invite } = await writer.engine.createInvite('mirror')
    const { invite: ownersInvite } = await s.owner.engine.createInvite('mirror')
    await settle()
    await expect(writer.engine.cancelInvite(ownersInvite.publicKey)).rejects.toMatchObject({ code: 'forbidden' })
    await expect(writer.engine.cancelInvite(NobleDeviceKey.generate().publicKey)).rejects.toMatchObject({ code: 'not_found' })
    await writer.engine.cancelInvite(invite.publicKey)
    await expect(writer.engine.cancelInvite(invite.publicKey)).rejects.toMatchObject({ code: 'conflict' })
    await s.owner.engine.cancelInvite(ownersInvite.publicKey)
    await settle()
    await expect(enrollThrough(invite, target, 'writer', 'target')).rejects.toMatchObject({ code: 'forbidden' })
    await expect(enrollThrough(ownersInvite, target, 'writer', 'target')).rejects.toMatchObject({ code: 'forbidden' })
    await settle()
    expect(s.owner.engine.roster.roleOf(target.device.publicKey)).toBeUndefined()
  })
})

describe('removing a device', () => {
  it('starts a new epoch: the others get its key, the removed device reads nothing written after', async () => {
    const { s, add, settle } = await session()
    const kept = await add()
    const removed = await add()
    await settle()
    s.owner.engine.session.appendMessage({ id: 'shared', role: 'user', content: 'everyone reads this' })
    s.owner.appended.add('shared')
    await settle()
    expect(removed.engine.session.message('shared')).toBeDefined()

    const key = await s.owner.engine.removeDevice(removed.device.publicKey)
    expect(key.epoch).toBe(1)
    await settle()
    expect(kept.engine.keys.has(1)).toBe(true)
    expect(removed.engine.keys.has(1)).toBe(false)
    expect(removed.engine.role).toBe('removed')

    kept.engine.session.appendMessage({ id: 'secret', role: 'user', content: 'after the removal' })
    kept.appended.add('secret')
    await settle()
    expect(s.owner.engine.session.message('secret')?.content).toBe('after the removal')
    expect(removed.engine.session.message('secret')).toBeUndefined()
    expect(removed.engine.status.held).toBeGreaterThan(0) // sealed under a key it will never get

    const stayed = s.replicas.filter((r) => r !== removed)
    // The removed device's held envelopes are the expected outcome here.
    assertConverged(stayed)
  })

  it('only the owner removes', async () => {
    const { add, settle, s } = await session()
    const writer = await add()
    await settle()
    await expect(writer.engine.removeDevice(s.owner.device.publicKey)).rejects.toMatchObject({ code: 'forbidden' })
  })
})
