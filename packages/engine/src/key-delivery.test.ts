import * as Y from 'yjs'
import { afterEach, describe, expect, it } from 'vitest'
import { BoxKey, SessionKeyring, WebCryptoDeviceKey, decodeKeyGrant, toBase64Url } from '@kai-sync/crypto'
import { NobleDeviceKey } from '@kai-sync/crypto/noble'
import { SimNetwork, createSimSession, seededRandom, settle } from './testing'
import { SyncEngine } from './sync-engine'
import { WireDoc } from './wire-doc'

// A handoff link carries no session key: the target, enrolled with the
// invite, is granted the keys to its box by a writer. These drive the
// engines directly over the simulated network.

const engines: SyncEngine[] = []
afterEach(() => {
  for (const e of engines.splice(0)) e.destroy()
})

async function world() {
  const net = new SimNetwork(seededRandom(3).gen, { reorder: 0, drop: 0, duplicate: 0 })
  const s = await createSimSession(net, { compactAfter: null })
  engines.push(s.owner.engine)
  s.owner.engine.session.appendMessage({ id: 'before', role: 'user', content: 'written before the handoff' })
  await settle(net, s.replicas)
  /** A device that holds no key: what a handoff target is before its grants. */
  const keyless = async (name: string) => {
    const wire = new WireDoc()
    const engine = await SyncEngine.open({ sessionId: s.sessionId, wire, device: await WebCryptoDeviceKey.generate(), box: await BoxKey.generate(), keys: new SessionKeyring(), mode: 'mobile', compactAfter: null })
    engines.push(engine)
    const node = net.add(name, wire.doc)
    net.connect(node, s.hub)
    net.flush()
    await engine.whenIdle()
    return { engine, node }
  }
  return { net, s, keyless }
}

const grantsTo = (wire: WireDoc, device: Uint8Array) => wire.keyGrants().map(decodeKeyGrant).filter((g) => toBase64Url(g.recipient) === toBase64Url(device))

describe('key delivery to a handoff target', () => {
  it('takeover: the target gets the keys even when the source\'s grants and its step-down reach it in one batch', async () => {
    const { net, s, keyless } = await world()
    const source = s.owner.engine
    const { invite } = await source.createInvite('takeover')
    await settle(net, s.replicas)
    const phone = await keyless('phone')
    expect(phone.engine.keys.epochs()).toEqual([])
    // The phone enrolls, and is offline while the source grants and steps down.
    net.goOffline(phone.node)
    await phone.engine.enrollWithInvite(await NobleDeviceKey.fromSecret(invite.exportSecret()), 'writer', 'phone')
    Y.applyUpdate(s.hub.doc, Y.encodeStateAsUpdate(phone.engine.wire.doc, Y.encodeStateVector(s.hub.doc)))
    await settle(net, s.replicas)
    expect(source.role).toBe('reader')
    expect(grantsTo(source.wire, phone.engine.device.publicKey).map((g) => toBase64Url(g.issuer))).toEqual([toBase64Url(source.device.publicKey)])
    // Back online: one sync brings the grant and the step-down together.
    net.goOnline(phone.node)
    net.flush()
    await phone.engine.whenIdle()
    expect(phone.engine.roster.roleOf(source.device.publicKey)).toBe('reader')
    expect(phone.engine.keys.has(0)).toBe(true)
    expect(phone.engine.session.message('before')?.content).toBe('written before the handoff')
  })

  it('only devices the roster admits through an invite are granted keys, once', async () => {
    const { net, s, keyless } = await world()
    const source = s.owner.engine
    const { invite } = await source.createInvite('observe')
    await settle(net, s.replicas)
    const reader = await keyless('reader')
    const late = await keyless('late')
    await reader.engine.enrollWithInvite(await NobleDeviceKey.fromSecret(invite.exportSecret()), 'reader', 'reader')
    net.flush()
    await late.engine.whenIdle()
    // The spent invite enrolls nobody else, so nobody else is granted a key.
    await expect(late.engine.enrollWithInvite(await NobleDeviceKey.fromSecret(invite.exportSecret()), 'reader', 'late')).rejects.toMatchObject({ code: 'forbidden' })
    for (let i = 0; i < 5; i++) {
      net.flush()
      await Promise.all(engines.map((e) => e.whenIdle()))
    }
    expect(reader.engine.keys.has(0)).toBe(true)
    expect(reader.engine.session.message('before')).toBeDefined()
    expect(grantsTo(source.wire, reader.engine.device.publicKey)).toHaveLength(1)
    expect(grantsTo(source.wire, late.engine.device.publicKey)).toHaveLength(0)
    expect(late.engine.keys.epochs()).toEqual([])
  })
})
