import * as Y from 'yjs'
import { afterEach, describe, expect, it } from 'vitest'
import { SessionKeyring, deriveClientId, newStreamId, sealEnvelope, type DeviceKey } from '@kai-sync/crypto'
import { NobleDeviceKey } from '@kai-sync/crypto/noble'
import { SessionDoc } from '@kai-sync/model'
import { SyncEngine } from './sync-engine'
import { WireDoc } from './wire-doc'
import { SimNetwork, addReplica, assertConverged, createSimSession, seededRandom, settle, type Replica } from './testing'

// A device must never leave a gap in its own stream: every envelope it
// seals continues the stream it is sealed into, whatever happens while a
// seal is in flight. A gap there holds everything the device writes after
// it, on every other replica, for good (issue 13's daemon loss).

const engines: SyncEngine[] = []
afterEach(() => {
  for (const e of engines.splice(0)) e.destroy()
})

async function session() {
  const net = new SimNetwork(seededRandom(13).gen, { reorder: 0, drop: 0, duplicate: 0 })
  const s = await createSimSession(net, { compactAfter: null })
  engines.push(s.owner.engine)
  const add = async (options: Parameters<typeof addReplica>[2] = {}) => {
    const r = await addReplica(net, s, { compactAfter: null, ...options })
    engines.push(r.engine)
    return r
  }
  return { net, s, add }
}

/** A device key whose signatures wait until `release()` once `hold()` was called: a slow platform signer. */
class GatedKey implements DeviceKey {
  private gate: Promise<void> | null = null
  private open: (() => void) | null = null
  constructor(private readonly inner: DeviceKey) {}
  get publicKey(): Uint8Array {
    return this.inner.publicKey
  }
  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve))
  }
  release(): void {
    this.open?.()
    this.gate = null
  }
  async sign(message: Uint8Array): Promise<Uint8Array> {
    if (this.gate) await this.gate
    return this.inner.sign(message)
  }
}

/** A restart: a new engine for the replica's device on what its store kept. */
async function restart(replica: Replica, net: SimNetwork, hub: Replica['node']): Promise<SyncEngine> {
  replica.engine.destroy()
  const copy = new Y.Doc()
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(replica.engine.wire.doc))
  const engine = await SyncEngine.open({
    sessionId: replica.engine.sessionId,
    wire: new WireDoc(copy),
    device: replica.device,
    box: replica.box,
    keys: new SessionKeyring([replica.engine.keys.current]),
    mode: 'desktop',
    compactAfter: null,
  })
  engines.push(engine)
  replica.engine = engine
  replica.rejections.length = 0
  engine.on('rejected', (x) => replica.rejections.push(x))
  replica.node = net.add(`${replica.name}'`, copy)
  net.connect(replica.node, hub)
  return engine
}

describe('a device never leaves a gap in its own stream', () => {
  it('a restart after a mirror handoff writes nothing at open, and what it writes next reaches the other device', async () => {
    const { net, s, add } = await session()
    const { invite } = await s.owner.engine.createInvite('mirror')
    const tablet = await add({ role: null })
    await settle(net, s.replicas)
    await tablet.engine.enrollWithInvite(await NobleDeviceKey.fromSecret(invite.exportSecret()), 'writer', 'tablet')
    s.owner.engine.session.appendMessage({ id: 'before', role: 'user', content: 'before the restart' })
    s.owner.appended.add('before')
    await settle(net, s.replicas)
    const audits = s.owner.engine.session.audit().length

    const reopened = await restart(s.owner, net, s.hub)
    // The completed handoff is already audited: opening writes nothing again.
    await reopened.whenIdle()
    expect(reopened.stats.sealed).toBe(0)
    reopened.session.appendMessage({ id: 'after', role: 'user', content: 'after the restart' })
    s.owner.appended.add('after')
    await settle(net, s.replicas)
    expect(tablet.engine.session.messageIds()).toContain('after')
    expect(tablet.engine.session.audit().length).toBe(audits)
    assertConverged(s.replicas)
  })

  it('a stream switch while a seal is in flight: the seal keeps its own stream, the next starts the new one at seq 1', async () => {
    const { net, s, add } = await session()
    const other = await add()
    const gated = new GatedKey(s.owner.device)
    const wire = new WireDoc()
    const engine = await SyncEngine.open({
      sessionId: s.sessionId,
      wire,
      device: gated,
      box: s.owner.box,
      keys: new SessionKeyring([s.key]),
      mode: 'tab',
      compactAfter: null,
    })
    engines.push(engine)
    const tab: Replica = { name: 'tab', device: gated, box: s.owner.box, engine, node: net.add('tab', wire.doc), appended: new Set(), rejections: [] }
    engine.on('rejected', (x) => tab.rejections.push(x))
    net.connect(tab.node, s.hub)
    s.replicas.push(tab)
    await settle(net, s.replicas)

    // A seal starts and waits in the signer...
    gated.hold()
    engine.session.appendMessage({ id: 'in-flight', role: 'user', content: 'sealed while the stream switches' })
    tab.appended.add('in-flight')
    await new Promise((r) => setTimeout(r, 5))
    // ...while a writer's snapshot brings structs written as this context's
    // Yjs client: Yjs gives the doc a new random client id, so the context
    // must move to a new stream.
    const position = engine.position
    const clientId = deriveClientId(gated.publicKey, position.stream)
    const doc = new Y.Doc()
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(engine.session.doc))
    doc.clientID = clientId
    doc.getMap('scratch').set('x', 1)
    const foreign = Y.encodeStateAsUpdate(doc, Y.encodeStateVector(engine.session.doc))
    other.engine.session.appendMessage({ id: 'from-other', role: 'user', content: 'a real change for the snapshot to cover' })
    other.appended.add('from-other')
    await other.engine.whenIdle()
    const snapshot = await sealEnvelope({
      header: {
        kind: 'snapshot',
        sessionId: s.sessionId,
        stream: other.engine.position.stream,
        seq: 0,
        prev: new Uint8Array(32),
        createdAt: Date.now(),
        clientIds: [clientId],
        covers: other.engine.ledger.cursors(),
      },
      plaintext: Y.mergeUpdates([foreign, Y.encodeStateAsUpdate(other.engine.session.doc)]),
      key: s.key,
      signer: other.device,
    })
    wire.append([snapshot.bytes], 'test')
    // (whenIdle would wait for the gated seal.)
    for (let i = 0; i < 50 && engine.position.stream === position.stream; i++) await new Promise((r) => setTimeout(r, 10))
    expect(engine.position.stream).not.toEqual(position.stream)
    gated.release()
    await engine.whenIdle()
    engine.session.appendMessage({ id: 'next', role: 'user', content: 'the first write on the new stream' })
    tab.appended.add('next')
    await settle(net, s.replicas)
    expect(engine.position.seq).toBe(1)
    for (const r of [s.owner, other]) {
      expect(r.engine.session.messageIds()).toEqual(expect.arrayContaining(['in-flight', 'next']))
      expect(r.engine.status.held).toBe(0)
    }
  }, 15_000)

  it('a stream left with a gap by an earlier bug is found at open, said loudly, and its content reaches every replica', async () => {
    const { net, s, add } = await session()
    const writer = await add()
    await settle(net, s.replicas)
    // What the old engine left behind: an envelope of a new stream at seq 2
    // whose prev names another stream's envelope; seq 1 of it never existed.
    const stream = newStreamId()
    const local = new SessionDoc({ device: writer.engine.session.device, mode: 'tab' })
    Y.applyUpdate(local.doc, Y.encodeStateAsUpdate(writer.engine.session.doc))
    local.doc.clientID = deriveClientId(writer.device.publicKey, stream)
    const before = Y.encodeStateVector(local.doc)
    local.appendMessage({ id: 'stranded', role: 'user', content: 'acknowledged, then held everywhere' })
    const stranded = await sealEnvelope({
      header: { kind: 'update', sessionId: s.sessionId, stream, seq: 2, prev: crypto.getRandomValues(new Uint8Array(32)), createdAt: Date.now(), clientIds: [local.doc.clientID], covers: [] },
      plaintext: Y.encodeStateAsUpdate(local.doc, before),
      key: s.key,
      signer: writer.device,
    })
    writer.engine.wire.append([stranded.bytes], 'the old engine')
    writer.appended.add('stranded')
    await settle(net, s.replicas)
    expect(s.owner.engine.status).toMatchObject({ held: 1, heldBy: { gap: 1 } })

    const reopened = await restart(writer, net, s.hub)
    expect(reopened.stats.rejected.get('own_gap')).toBe(1)
    expect(reopened.session.messageIds()).toContain('stranded')
    await settle(net, s.replicas)
    expect(s.owner.engine.session.messageIds()).toContain('stranded')
    expect(s.owner.engine.status.held).toBe(0)
    writer.rejections.length = 0 // the loud report, seen above
    assertConverged(s.replicas)
  })
})
