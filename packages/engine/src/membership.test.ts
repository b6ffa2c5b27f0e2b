import * as Y from 'yjs'
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest'
import { BoxKey, WebCryptoDeviceKey, SessionKey, SessionKeyring, ZERO_HASH, decodeEnvelope, decodeRosterEntry, equalBytes, grantKey, newStreamId, sealEnvelope } from '@kai-sync/crypto'
import { NobleDeviceKey } from '@kai-sync/crypto/noble'
import { SimNetwork, addReplica, assertConverged, createSimSession, recordOf, reopenReplica, seededRandom, settle, type Replica } from './testing'
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
  await target.engine.enrollWithInvite(await NobleDeviceKey.fromSecret(invite.exportSecret()), role, label)
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
    s.replicas.splice(s.replicas.indexOf(s.owner), 1)
    clock += INVITE_LIFETIME_MS
    // The issuer opens again (no relay burns anything here) and retires the invite.
    const copy = new Y.Doc()
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(s.owner.engine.wire.doc))
    const reopened = await SyncEngine.open({ sessionId: s.sessionId, wire: new WireDoc(copy), device: s.owner.device, box: s.owner.box, keys: new SessionKeyring([s.key]), mode: 'desktop', compactAfter: null, now })
    onTestFinished(() => reopened.destroy())
    net.connect(net.add('r0-reopened', copy), s.hub)
    await reopened.whenIdle()
    expect(reopened.roster.roleOf(invite.publicKey)).toBe('removed')
    await settle()
    await expect(enrollThrough(invite, late, 'writer', 'late')).rejects.toMatchObject({ code: 'forbidden' })
    await settle()
    await reopened.whenIdle()
    for (const engine of [reopened, early.engine, late.engine]) {
      expect(engine.roster.roleOf(early.device.publicKey)).toBe('writer')
      expect(engine.roster.roleOf(late.device.publicKey)).toBeUndefined()
    }
  })

  it('a running issuer retires its unspent invite when the lifetime passes', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    onTestFinished(() => {
      vi.useRealTimers()
    })
    let clock = Date.now()
    const now = () => clock
    const { s, add, settle } = await session(now)
    const { invite } = await s.owner.engine.createInvite('observe')
    const late = await add({ role: null, now })
    // Another context of the issuing device: it retires the invite too, with the very same entry.
    await add({ sameDeviceAs: s.owner, now })
    await settle()
    // Entries are issued after the latest one seen, so the invite may be a few ms ahead of the clock.
    clock += INVITE_LIFETIME_MS + 1000
    await vi.advanceTimersByTimeAsync(INVITE_LIFETIME_MS + 1000)
    await settle()
    expect(late.engine.roster.roleOf(invite.publicKey)).toBe('removed')
    const aboutInvite = late.engine.wire.rosterEntries().map(decodeRosterEntry).filter((e) => equalBytes(e.subject, invite.publicKey))
    expect(aboutInvite.map((e) => e.role)).toEqual(['invite_reader', 'removed'])
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
    await expect(writer.engine.cancelInvite((await NobleDeviceKey.generate()).publicKey)).rejects.toMatchObject({ code: 'not_found' })
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

describe('leaving a session', () => {
  it('a writer steps itself out: every replica, a late one too, sees it removed and keeps what it wrote; the owner cannot leave the roster', async () => {
    const { s, add, settle } = await session()
    const leaver = await add()
    await settle()
    leaver.engine.session.appendMessage({ id: 'before-leaving', role: 'user', content: 'written before leaving' })
    leaver.appended.add('before-leaving')
    await settle()
    const entry = await leaver.engine.leave()
    expect(entry?.role).toBe('removed')
    await settle()
    expect(s.owner.engine.roster.roleOf(leaver.device.publicKey)).toBe('removed')
    expect(leaver.engine.canWrite).toBe(false)
    // A device that joins later reads the leaver's message: the step-out kept its stream valid.
    const late = await add({ role: 'reader' })
    await settle()
    expect(late.engine.roster.roleOf(leaver.device.publicKey)).toBe('removed')
    expect(late.engine.session.message('before-leaving')?.content).toBe('written before leaving')
    expect(late.engine.status.refused).toBe(0)
    expect(await leaver.engine.leave()).toBeNull()
    expect(await s.owner.engine.leave()).toBeNull()
    await settle()
    expect(late.engine.roster.roleOf(s.owner.device.publicKey)).toBe('owner')
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

  /** Delivers what is in flight over the links that are up, without healing any. */
  async function deliver(net: SimNetwork, replicas: Replica[]): Promise<void> {
    for (let round = 0; round < 100; round++) {
      await Promise.all(replicas.map((r) => r.engine.whenIdle()))
      if (net.pending === 0) return
      net.flush()
    }
  }

  it('a snapshot its writer sealed just before its removal, refused by a replica that hears of it after: a writer that took it re-seals what it held, so nothing it replaced is lost', async () => {
    let clock = Date.now()
    const now = () => clock
    const { net, s, add, settle } = await session(now)
    const writer = await add({ now })
    const leaver = await add({ now })
    await settle()
    // The owner is cut off: neither the message nor the snapshot that replaces it reach it before it removes the leaver.
    net.goOffline(s.owner.node)
    clock += 10
    writer.engine.session.appendMessage({ id: 'covered', role: 'user', content: 'compacted away by the leaver' })
    writer.appended.add('covered')
    await deliver(net, s.replicas)
    clock += 10
    expect(await leaver.engine.compact()).toBeGreaterThan(0)
    await deliver(net, s.replicas)
    clock += 10
    await s.owner.engine.removeDevice(leaver.device.publicKey)
    await settle()
    expect(leaver.engine.role).toBe('removed')
    // The owner refused the leaver's snapshot (its signer was removed), whose deletions stand; the writer answered.
    expect(s.owner.rejections.some((x) => x.code === 'unauthorized_signer')).toBe(true)
    expect(s.owner.engine.session.message('covered')?.content).toBe('compacted away by the leaver')
    expect(recordOf(s.owner)).toEqual(recordOf(writer))
    // So does a device that joins afterwards, from the log (its handoff grants it the current key, as a real one does).
    const late = await add({ role: 'reader', now })
    const grant = await grantKey({ sessionId: s.sessionId, key: s.owner.engine.keys.current, recipient: late.device.publicKey, recipientBox: late.box.publicKey, issuer: s.owner.device })
    s.owner.engine.wire.addKeyGrants([grant.bytes], null)
    await settle()
    expect(late.engine.session.message('covered')?.content).toBe('compacted away by the leaver')
  })

  it('a snapshot a removed writer seals after its removal, not knowing of it, is refused, and a device that joins later still gets what its deletions took', async () => {
    let clock = Date.now()
    const now = () => clock
    const { net, s, add, settle } = await session(now)
    const writer = await add({ now })
    const author = await add({ now })
    const leaver = await add({ now })
    await settle()
    author.engine.session.appendMessage({ id: 'taken', role: 'user', content: 'in the log until the leaver compacts it away' })
    author.appended.add('taken')
    await settle()
    // Its author is gone for good (it could re-seal its own envelope; see dropped-own.test.ts).
    net.goOffline(author.node)
    net.goOffline(leaver.node)
    await s.owner.engine.removeDevice(leaver.device.publicKey)
    await deliver(net, s.replicas)
    clock += 10
    // Unaware of its removal, the leaver compacts: its snapshot covers the author's envelope and deletes it.
    expect(await leaver.engine.compact()).not.toBeNull()
    net.goOnline(leaver.node)
    await deliver(net, s.replicas)
    for (const r of [s.owner, writer]) expect(r.rejections.some((x) => x.code === 'unauthorized_signer'), r.name).toBe(true)
    // A device that joins afterwards gets the message from the log, though the leaver's snapshot is refused.
    const late = await add({ role: 'reader', now })
    const grant = await grantKey({ sessionId: s.sessionId, key: s.owner.engine.keys.current, recipient: late.device.publicKey, recipientBox: late.box.publicKey, issuer: s.owner.device })
    s.owner.engine.wire.addKeyGrants([grant.bytes], null)
    await deliver(net, [s.owner, writer, leaver, late])
    expect(late.engine.session.message('taken')?.content).toBe('in the log until the leaver compacts it away')
  })

  /** The writer's envelopes in a wire log sealed under `epoch`. */
  function sealedUnder(log: Uint8Array[], device: Uint8Array, epoch: number): number {
    return log.map((b) => decodeEnvelope(b).header).filter((h) => equalBytes(h.device, device) && h.epoch === epoch && h.kind !== 'snapshot').length
  }

  it('a removal racing a write: what the writer sealed under the old epoch after the removal is refused, then re-sealed under the new one', async () => {
    let clock = Date.now()
    const now = () => clock
    const { net, s, add, settle } = await session(now)
    const writer = await add({ now })
    const kept = await add({ role: 'reader', now })
    const removed = await add({ now })
    await settle()
    // The writer has not heard of the removal: it is cut off from the relay.
    net.goOffline(writer.node)
    await s.owner.engine.removeDevice(removed.device.publicKey)
    await deliver(net, s.replicas)
    expect(removed.engine.role).toBe('removed')
    clock += 1000
    writer.engine.session.appendMessage({ id: 'during', role: 'user', content: 'written before the writer heard of the removal' })
    writer.appended.add('during')
    await writer.engine.flush()
    expect(sealedUnder(writer.engine.wire.envelopes(), writer.device.publicKey, 0)).toBeGreaterThan(0)

    await settle()
    // Everyone who knew of the new epoch refused the old-epoch envelope, the removed device too.
    for (const r of [s.owner, kept, removed]) expect(r.rejections.filter((x) => x.code === 'stale_epoch' && !x.held).length).toBeGreaterThan(0)
    expect(removed.engine.session.message('during')).toBeUndefined()
    // The writer re-sealed it under the new epoch, and its old-epoch copy left the log.
    expect(s.owner.engine.session.message('during')?.content).toBe('written before the writer heard of the removal')
    expect(sealedUnder(net.node('relay').doc.getArray<Uint8Array>('log').toArray(), writer.device.publicKey, 0)).toBe(0)

    writer.engine.session.appendMessage({ id: 'after', role: 'user', content: 'after' })
    writer.appended.add('after')
    await settle()
    expect(kept.engine.session.message('after')).toBeDefined()
    expect(removed.engine.session.message('after')).toBeUndefined()
    const stayed = [s.owner, writer, kept]
    for (const r of stayed) r.rejections = r.rejections.filter((x) => x.code !== 'stale_epoch')
    assertConverged(stayed)
    // A reload reads the epoch's start from the grants again.
    const reloaded = await reopenReplica(kept)
    onTestFinished(() => reloaded.destroy())
    expect(reloaded.epochs.staleness({ epoch: 0, createdAt: clock })).toMatchObject({ code: 'stale_epoch' })
  })

  it('a removal racing a write: the relay drops the old-epoch envelope before the writer holds the new key, and the writer still re-seals it once it does', async () => {
    let clock = Date.now()
    const now = () => clock
    const { net, s, add, settle } = await session(now)
    const writer = await add({ now })
    const removed = await add({ now })
    await settle()
    net.goOffline(writer.node)
    await s.owner.engine.removeDevice(removed.device.publicKey)
    await deliver(net, s.replicas)
    clock += 1000
    writer.engine.session.appendMessage({ id: 'during', role: 'user', content: 'written before the writer heard of the removal' })
    writer.appended.add('during')
    await writer.engine.flush()
    // What the kai relay does with it (StaleDrop): takes it in and deletes
    // it from the log; here the tombstone reaches the writer ahead of the
    // grants (it holds no key of the new epoch yet).
    const hub = net.node('relay').doc
    Y.applyUpdate(hub, Y.encodeStateAsUpdate(writer.engine.wire.doc, Y.encodeStateVector(hub)))
    const log = hub.getArray<Uint8Array>('log')
    const stale = log.toArray().flatMap((b, i) => (equalBytes(decodeEnvelope(b).header.device, writer.device.publicKey) && decodeEnvelope(b).header.epoch === 0 && decodeEnvelope(b).header.createdAt >= clock ? [i] : []))
    expect(stale.length).toBeGreaterThan(0)
    hub.transact(() => {
      for (const i of stale.reverse()) log.delete(i, 1)
    })
    Y.applyUpdate(writer.engine.wire.doc, Y.encodeStateAsUpdate(hub, Y.encodeStateVector(hub)))
    await writer.engine.whenIdle()
    expect(writer.engine.keys.epochs()).toEqual([0])
    expect(sealedUnder(writer.engine.wire.envelopes(), writer.device.publicKey, 0)).toBe(sealedUnder(log.toArray(), writer.device.publicKey, 0))

    // Its grant arrives: what the dropped envelope carried goes out again, under the new key.
    net.goOnline(writer.node)
    await settle()
    expect(writer.engine.keys.epochs()).toContain(1)
    expect(s.owner.engine.session.message('during')?.content).toBe('written before the writer heard of the removal')
    expect(removed.engine.session.message('during')).toBeUndefined()
  })

  it('a writer killed after it heard of the new epoch, before it re-sealed, applies its own stale envelopes at its next open and re-seals them', async () => {
    let clock = Date.now()
    const now = () => clock
    const { net, s, add, settle } = await session(now)
    const writer = await add({ now })
    const removed = await add({ now })
    await settle()
    net.goOffline(writer.node)
    await s.owner.engine.removeDevice(removed.device.publicKey)
    await deliver(net, s.replicas)
    clock += 1000
    writer.engine.session.appendMessage({ id: 'during', role: 'user', content: 'the only copy is in the log' })
    await writer.engine.flush()
    // Its store as a kill right after the removal and the grants arrived would leave it.
    const copy = new Y.Doc()
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(writer.engine.wire.doc))
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(net.node('relay').doc))
    writer.engine.destroy()
    s.replicas.splice(s.replicas.indexOf(writer), 1)
    const reopened = await SyncEngine.open({ sessionId: s.sessionId, wire: new WireDoc(copy), device: writer.device, box: writer.box, keys: new SessionKeyring([s.key]), mode: 'tab', compactAfter: null, now })
    onTestFinished(() => reopened.destroy())
    await reopened.whenIdle()
    expect(reopened.session.message('during')?.content).toBe('the only copy is in the log')
    expect(sealedUnder(copy.getArray<Uint8Array>('log').toArray(), writer.device.publicKey, 0)).toBe(0)
    net.connect(net.add('writer-reopened', copy), s.hub)
    await settle()
    await reopened.whenIdle()
    await settle()
    expect(s.owner.engine.session.message('during')?.content).toBe('the only copy is in the log')
    expect(removed.engine.session.message('during')).toBeUndefined()
  })

  it('a writer that knows a new epoch started but holds no key of it seals nothing until it does', async () => {
    let clock = Date.now()
    const now = () => clock
    const { net, s, add, settle } = await session(now)
    const removed = await add({ now })
    // A writer whose roster entry names no X25519 box: no grant of the new key can reach it.
    const device = await WebCryptoDeviceKey.generate()
    await s.owner.engine.setRole(device.publicKey, 'writer', { label: 'no box' })
    const wire = new WireDoc()
    const engine = await SyncEngine.open({ sessionId: s.sessionId, wire, device, keys: new SessionKeyring([s.key]), mode: 'tab', compactAfter: null, now })
    const boxless: Replica = { name: 'boxless', device, box: await BoxKey.generate(), engine, node: net.add('boxless', wire.doc), appended: new Set(), rejections: [] }
    net.connect(boxless.node, s.hub)
    s.replicas.push(boxless)
    replicas.push(boxless)
    await settle()
    await s.owner.engine.removeDevice(removed.device.publicKey)
    await settle()
    clock += 1000
    engine.session.appendMessage({ id: 'waits', role: 'user', content: 'sealed only under the new key' })
    await settle()
    expect(engine.status.unsealed).toBeGreaterThan(0)
    expect(sealedUnder(net.node('relay').doc.getArray<Uint8Array>('log').toArray(), device.publicKey, 0)).toBe(0)
    expect(s.owner.rejections.filter((x) => x.code === 'stale_epoch')).toEqual([])
    // The key reaches it (here out of band): the change goes out under it.
    engine.keys.add(s.owner.engine.keys.get(1)!)
    await engine.flush()
    await settle()
    expect(s.owner.engine.session.message('waits')).toBeDefined()
    expect(removed.engine.session.message('waits')).toBeUndefined()
  })

  it('a writer\'s key grant dates no epoch: it cannot make everyone\'s envelopes stale', async () => {
    const { s, add, settle } = await session()
    const writer = await add()
    const kept = await add({ role: 'reader' })
    await settle()
    const stranger = await BoxKey.generate()
    const bogus = await grantKey({ sessionId: s.sessionId, key: await SessionKey.generate(9, { extractable: true }), recipient: (await NobleDeviceKey.generate()).publicKey, recipientBox: stranger.publicKey, issuer: writer.device, issuedAt: 1 })
    writer.engine.wire.addKeyGrants([bogus.bytes], 'test')
    s.owner.engine.session.appendMessage({ id: 'still', role: 'user', content: 'still sealed under epoch 0' })
    s.owner.appended.add('still')
    await settle()
    expect(kept.engine.session.message('still')).toBeDefined()
    assertConverged(s.replicas)
  })

  it('a removal racing a write, seen in either order: a replica that applied the old-epoch envelope first converges with those that refused it', async () => {
    let clock = Date.now()
    const now = () => clock
    const { net, s, add, settle } = await session(now)
    const writer = await add({ now })
    const kept = await add({ now })
    const removed = await add({ now })
    await settle()
    // The writer and one other writer on one side, the owner on the other.
    net.disconnect(writer.node, s.hub)
    net.disconnect(kept.node, s.hub)
    net.connect(writer.node, kept.node)
    await s.owner.engine.removeDevice(removed.device.publicKey)
    clock += 1000
    writer.engine.session.appendMessage({ id: 'during', role: 'user', content: 'during' })
    writer.appended.add('during')
    await deliver(net, s.replicas)
    expect(kept.engine.session.message('during')).toBeDefined() // applied: it knew of no removal
    await settle()
    const stayed = [s.owner, writer, kept]
    expect(s.owner.rejections.some((x) => x.code === 'stale_epoch')).toBe(true)
    for (const r of stayed) r.rejections = r.rejections.filter((x) => x.code !== 'stale_epoch')
    assertConverged(stayed)
    expect(s.owner.engine.ledger.cursors()).toEqual(kept.engine.ledger.cursors())
  })

  it('a removal racing a write whose writer never comes back: a writer that applied the old-epoch envelope before it heard of the removal re-seals it, so the owner, who refused it, shows the same (relay hostile fuzz seed 237)', async () => {
    let clock = Date.now()
    const now = () => clock
    const { net, s, add } = await session(now)
    const writer = await add({ now })
    const kept = await add({ now })
    const removed = await add({ now })
    await settle(net, s.replicas)
    net.disconnect(writer.node, s.hub)
    net.disconnect(kept.node, s.hub)
    net.connect(writer.node, kept.node)
    await s.owner.engine.removeDevice(removed.device.publicKey)
    clock += 1000
    writer.engine.session.appendMessage({ id: 'during', role: 'user', content: 'during' })
    await deliver(net, s.replicas)
    expect(kept.engine.session.message('during')).toBeDefined() // applied: it knew of no removal
    // The writer is gone before it heard of the removal (lost, or shut out): it re-seals nothing.
    net.goOffline(writer.node)
    net.connect(kept.node, s.hub)
    const stayed = [s.owner, kept]
    await settle(net, stayed)
    expect(s.owner.rejections.some((x) => x.code === 'stale_epoch')).toBe(true)
    expect(s.owner.engine.session.message('during')?.content).toBe('during')
    for (const r of stayed) r.rejections = r.rejections.filter((x) => x.code !== 'stale_epoch')
    assertConverged(stayed)
  })

  it('a snapshot sealed under the old epoch by a writer that never comes back: its deletions stand, so a writer that refused it and holds what they deleted re-seals that (relay hostile fuzz seed 491)', async () => {
    let clock = Date.now()
    const now = () => clock
    const { net, s, add } = await session(now)
    const writer = await add({ now })
    const late = await add({ now })
    const removed = await add({ now })
    await settle(net, s.replicas)
    // The writer's message reaches the relay while the owner and \`late\` are away.
    net.disconnect(late.node, s.hub)
    net.disconnect(s.owner.node, s.hub)
    writer.engine.session.appendMessage({ id: 'kept', role: 'user', content: 'kept' })
    await writer.engine.flush()
    await deliver(net, s.replicas)
    // The owner removes a device (re-sealing what it holds under the new key), then gets the message; the writer hears of neither.
    net.disconnect(writer.node, s.hub)
    clock += 500
    await s.owner.engine.removeDevice(removed.device.publicKey)
    net.connect(s.owner.node, s.hub)
    await deliver(net, s.replicas)
    expect(s.owner.engine.session.message('kept')).toBeDefined()
    // The writer compacts under the old key after the removal: its snapshot deletes the message's envelope.
    clock += 1000
    await writer.engine.compact()
    // Synchronous rounds: the snapshot reaches the relay, and the writer is gone (lost, or shut out) before its engine runs again.
    net.connect(writer.node, s.hub)
    for (let i = 0; i < 4; i++) net.flush()
    writer.engine.destroy()
    net.goOffline(writer.node)
    const log = net.node('relay').doc.getArray<Uint8Array>('log').toArray().map((b) => decodeEnvelope(b).header)
    expect(log.filter((h) => h.kind === 'snapshot' && h.epoch === 0 && equalBytes(h.device, writer.device.publicKey))).toHaveLength(1)
    net.connect(late.node, s.hub)
    const stayed = [s.owner, late]
    await settle(net, stayed)
    expect(s.owner.rejections.some((x) => x.code === 'stale_epoch')).toBe(true)
    expect(late.engine.session.message('kept')?.content).toBe('kept')
    for (const r of stayed) r.rejections = r.rejections.filter((x) => x.code !== 'stale_epoch')
    assertConverged(stayed)
  })

  it('a stale snapshot whose signature does not verify is refused and answered by nobody (a forged one cannot make writers compact)', async () => {
    let clock = Date.now()
    const now = () => clock
    const { net, s, add } = await session(now)
    const writer = await add({ now })
    const signer = await add({ now }) // the writer the snapshot claims to be from: away, it answers nothing itself
    const removed = await add({ now })
    await settle(net, s.replicas)
    net.goOffline(signer.node)
    const oldKey = s.owner.engine.keys.get(0)!
    await s.owner.engine.removeDevice(removed.device.publicKey)
    await settle(net, s.replicas)
    const snapshotsBy = (device: Uint8Array) => net.node('relay').doc.getArray<Uint8Array>('log').toArray().filter((b) => {
      const h = decodeEnvelope(b).header
      return h.kind === 'snapshot' && equalBytes(h.device, device)
    }).length
    const before = [snapshotsBy(s.owner.device.publicKey), snapshotsBy(writer.device.publicKey)]
    clock += 1000
    const doc = new Y.Doc()
    doc.getMap('config').set('forged', 'forged')
    const stale = await sealEnvelope({
      header: { kind: 'snapshot', sessionId: s.sessionId, stream: newStreamId(), seq: 0, prev: ZERO_HASH, createdAt: clock, clientIds: [], covers: [] },
      plaintext: Y.encodeStateAsUpdate(doc),
      key: oldKey,
      signer: signer.device,
    })
    const forged = Uint8Array.from(stale.bytes)
    forged[forged.length - 1]! ^= 1 // the signature's last byte
    new WireDoc(net.node('relay').doc).append([forged], null)
    await settle(net, [s.owner, writer])
    expect(s.owner.rejections.some((x) => x.code === 'stale_epoch')).toBe(true)
    expect([snapshotsBy(s.owner.device.publicKey), snapshotsBy(writer.device.publicKey)]).toEqual(before)
    // The same snapshot with its signature whole is answered.
    new WireDoc(net.node('relay').doc).append([stale.bytes], null)
    await settle(net, [s.owner, writer])
    expect(snapshotsBy(s.owner.device.publicKey) + snapshotsBy(writer.device.publicKey)).toBeGreaterThan(before[0]! + before[1]!)
  })

  it('only the owner removes', async () => {
    const { add, settle, s } = await session()
    const writer = await add()
    await settle()
    await expect(writer.engine.removeDevice(s.owner.device.publicKey)).rejects.toMatchObject({ code: 'forbidden' })
  })
})
