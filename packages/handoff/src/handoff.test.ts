import { afterEach, describe, expect, it } from 'vitest'
import { BoxKey, WebCryptoDeviceKey, decodeKeyGrant, defaultVerifier, fromBase64Url, toBase64Url, type DeviceKey } from '@kai-sync/crypto'
import { SimNetwork, addReplica, createSimSession, seededRandom, settle, type SimSession } from '@kai-sync/engine/testing'
import type { SyncEngine } from '@kai-sync/engine'
import type { Mode, TransferType, VolatileState } from '@kai-sync/model'
import { HandoffRegistry } from './registry'
import type { RegisterHandoffBody, ResumeBody } from './protocol'
import { localHandoffRelay, type HandoffRelay } from './relay-client'
import { initiateHandoff } from './initiate'
import { acceptHandoff, type AcceptedHandoff } from './accept'
import { encodeResumeLink, parseResumeLink, resumeLinkBytes } from './link'

const engines: SyncEngine[] = []
afterEach(() => {
  for (const e of engines.splice(0)) e.destroy()
})

const APP = 'https://kai.example/resume'
const RELAY = 'ws://127.0.0.1:4444'

async function world() {
  const net = new SimNetwork(seededRandom(9).gen, { reorder: 0, drop: 0, duplicate: 0 })
  const session = await createSimSession(net, { compactAfter: null, mode: 'sidepanel' })
  engines.push(session.owner.engine)
  const registry = new HandoffRegistry({
    verifier: await defaultVerifier(),
    // The relay asks its copy of the roster; the hub is that copy here.
    mayHandOff: (_sid, issuer) => ['owner', 'writer'].includes(session.owner.engine.roster.roleOf(issuer) ?? ''),
  })
  // Everything the relay is sent, to check it never holds a secret.
  const sent: Array<RegisterHandoffBody | ResumeBody> = []
  const inner = localHandoffRelay(registry)
  const relay: HandoffRelay = {
    register: (sid, body) => (sent.push(body), inner.register(sid, body)),
    resume: (sid, body) => (sent.push(body), inner.resume(sid, body)),
  }
  let n = 0
  const accept = async (link: string, options: { mode?: Mode; now?: () => number; device?: DeviceKey } = {}): Promise<AcceptedHandoff> => {
    const accepted = await acceptHandoff(link, {
      device: options.device ?? (await WebCryptoDeviceKey.generate()),
      box: await BoxKey.generate(),
      mode: options.mode ?? 'mobile',
      label: `target ${++n}`,
      relay,
      engine: { compactAfter: null },
      ...(options.now ? { now: options.now } : {}),
      connect: async (engine) => {
        engines.push(engine)
        const node = net.add(`target-${n}`, engine.wire.doc)
        net.connect(node, session.hub)
        net.flush()
        await engine.whenIdle()
        // Keys come by grant once the enrollment reaches a writer: keep the network moving while connected.
        const pump = setInterval(() => net.flush(), 2)
        return {
          destroy: () => {
            clearInterval(pump)
            net.goOffline(node)
          },
        }
      },
    })
    return accepted
  }
  const everyone = () => settleAll(net, session)
  return { net, session, registry, relay, sent, accept, everyone }
}

async function settleAll(net: SimNetwork, session: SimSession): Promise<void> {
  for (let i = 0; i < 5; i++) {
    net.flush()
    await Promise.all(engines.map((e) => e.whenIdle()))
  }
  await settle(net, session.replicas)
}

function intent(session: SimSession, transfer: TransferType, volatile?: VolatileState) {
  return { session_id: session.sessionId, source_mode: 'sidepanel' as const, target_mode: 'mobile' as const, transfer_type: transfer, ...(volatile ? { volatile } : {}) }
}

describe('handoff', () => {
  it('takeover: the target becomes the writer, the source read-only and says where the session went', async () => {
    const { session, relay, accept, everyone } = await world()
    const source = session.owner.engine
    source.session.appendMessage({ id: 'm1', role: 'user', content: 'before the handoff' })
    const moved: string[] = []
    source.on('moved', (to) => moved.push(to.label))
    const response = await initiateHandoff(source, intent(session, 'takeover'), { appUrl: APP, relayUrl: RELAY, relay })
    const target = await accept(response.resume_url)
    await everyone()
    expect(target.transfer).toBe('takeover')
    expect(target.record.messages.map((m) => m.content)).toEqual(['before the handoff'])
    expect(target.engine.role).toBe('writer')
    expect(source.role).toBe('reader')
    expect(moved).toEqual(['target 1'])
    expect(() => source.session.appendMessage({ id: 'x', role: 'user', content: 'x' })).toThrow(/forbidden/)
    target.engine.session.appendMessage({ id: 'm2', role: 'user', content: 'continued on the phone' })
    await everyone()
    expect(source.session.message('m2')?.content).toBe('continued on the phone')
  })

  it('mirror: both write; observe: the target reads and may not write', async () => {
    const { session, relay, accept, everyone } = await world()
    const source = session.owner.engine
    const mirror = await accept((await initiateHandoff(source, intent(session, 'mirror'), { appUrl: APP, relayUrl: RELAY, relay })).resume_url)
    const observer = await accept((await initiateHandoff(source, intent(session, 'observe'), { appUrl: APP, relayUrl: RELAY, relay })).resume_url)
    await everyone()
    expect([source.role, mirror.engine.role, observer.engine.role]).toEqual(['owner', 'writer', 'reader'])
    mirror.engine.session.appendMessage({ id: 'from-mirror', role: 'user', content: 'mirror writes' })
    source.session.appendMessage({ id: 'from-source', role: 'user', content: 'source writes' })
    await everyone()
    expect(observer.engine.session.messageIds()).toEqual(expect.arrayContaining(['from-mirror', 'from-source']))
    expect(() => observer.engine.session.appendMessage({ id: 'no', role: 'user', content: 'no' })).toThrow(/forbidden/)
  })

  it('a half-streamed reply continues on the target, with the volatile state', async () => {
    const { session, relay, accept, everyone } = await world()
    const source = session.owner.engine
    source.session.startStream({ id: 'reply', role: 'assistant' })
    source.session.streamText('reply', 'The capital of Portugal is Lis')
    await source.flush()
    const volatile: VolatileState = {
      active_tools: ['search'],
      streaming: { message_id: 'reply', buffer: 'The capital of Portugal is Lis' },
      scratchpad: 'user prefers short answers',
      ui_state: { draft: 'and what about Spa' },
    }
    const response = await initiateHandoff(source, intent(session, 'takeover', volatile), { appUrl: APP, relayUrl: RELAY, relay })
    const target = await accept(response.resume_url)
    expect(target.volatile).toEqual(volatile)
    const { message_id } = target.volatile!.streaming!
    expect(target.engine.session.message(message_id)?.content).toBe('The capital of Portugal is Lis')
    target.engine.session.streamText(message_id, 'bon.')
    target.engine.session.finishStream(message_id)
    await everyone()
    expect(source.session.message('reply')).toMatchObject({ content: 'The capital of Portugal is Lisbon.', status: 'complete' })
  })

  it('writes audit entries on both sides', async () => {
    const { session, relay, accept, everyone } = await world()
    const source = session.owner.engine
    const target = await accept((await initiateHandoff(source, intent(session, 'mirror'), { appUrl: APP, relayUrl: RELAY, relay })).resume_url)
    await everyone()
    const actions = source.session.audit().map((a) => [a.action, a.actor === toBase64Url(source.device.publicKey) ? 'source' : 'target'])
    expect(actions).toEqual(expect.arrayContaining([['handoff.initiated', 'source'], ['handoff.completed', 'source'], ['handoff.accepted', 'target']]))
    expect(target.engine.session.audit().length).toBe(source.session.audit().length)
  })

  it('the relay is sent no key, no invite secret and no plaintext', async () => {
    const { session, relay, sent } = await world()
    const source = session.owner.engine
    const volatile: VolatileState = { active_tools: [], streaming: null, scratchpad: 'PLAINTEXT-MARKER', ui_state: {} }
    const response = await initiateHandoff(source, intent(session, 'mirror', volatile), { appUrl: APP, relayUrl: RELAY, relay })
    const link = parseResumeLink(response.resume_url)
    const keys = await Promise.all(source.keys.epochs().map((e) => source.keys.get(e)!.exportRaw()))
    const secrets = [link.inviteSecret, ...keys].map((b) => toBase64Url(b))
    const toRelay = JSON.stringify(sent)
    for (const s of secrets) expect(toRelay.includes(s)).toBe(false)
    const body = sent[0] as RegisterHandoffBody
    expect(Buffer.from(fromBase64Url(body.volatile!)!).includes('PLAINTEXT-MARKER')).toBe(false)
    expect(new URL(response.resume_url).hash.length).toBeGreaterThan(100)
    expect(response.qr_code.svg).toMatch(/^<svg/)
    expect(response.qr_code.data_url).toMatch(/^data:image\/png;base64,/)
    expect(response.expires_at - Date.now()).toBeLessThanOrEqual(5 * 60_000)
    expect(response.instructions).toMatch(/phone/)
  })
})

describe('the link carries no session key', () => {
  it('no 32 bytes of the fragment are an epoch\'s key; the target is granted every epoch\'s key to its box, by the source, once', async () => {
    const { net, session, relay, accept, everyone } = await world()
    const source = session.owner.engine
    source.session.appendMessage({ id: 'm0', role: 'user', content: 'under epoch 0' })
    const gone = await addReplica(net, session, { role: 'reader', compactAfter: null })
    engines.push(gone.engine)
    await everyone()
    await source.removeDevice(gone.device.publicKey) // starts epoch 1
    source.session.appendMessage({ id: 'm1', role: 'user', content: 'under epoch 1' })
    await source.flush()
    const raw = await Promise.all(source.keys.epochs().map((e) => source.keys.get(e)!.exportRaw()))
    expect(raw).toHaveLength(2)
    const response = await initiateHandoff(source, intent(session, 'observe'), { appUrl: APP, relayUrl: RELAY, relay })
    const fragment = Buffer.from(resumeLinkBytes(response.resume_url))
    for (const key of raw) expect(fragment.includes(Buffer.from(key))).toBe(false)

    const target = await accept(response.resume_url)
    expect(target.record.messages.map((m) => m.content)).toEqual(['under epoch 0', 'under epoch 1'])
    for (const [epoch, key] of raw.entries()) expect(Buffer.from(await target.engine.keys.get(epoch)!.exportRaw()).equals(Buffer.from(key))).toBe(true)
    await everyone()
    const toTarget = session.owner.engine.wire.keyGrants().map(decodeKeyGrant).filter((g) => Buffer.from(g.recipient).equals(Buffer.from(target.engine.device.publicKey)))
    expect(toTarget.map((g) => [g.epoch, toBase64Url(g.issuer)]).sort()).toEqual([
      [0, toBase64Url(source.device.publicKey)],
      [1, toBase64Url(source.device.publicKey)],
    ])
  })

  it('a writer other than the source grants the keys if the source is gone, and only what is missing', async () => {
    const { net, session, relay, accept, everyone } = await world()
    const source = session.owner.engine
    source.session.appendMessage({ id: 'm0', role: 'user', content: 'hello' })
    const helper = await addReplica(net, session, { role: 'writer', compactAfter: null })
    engines.push(helper.engine)
    await everyone()
    // The helper got the key out of band (as `kai device add` grants it).
    expect(helper.engine.keys.has(0)).toBe(true)
    const response = await initiateHandoff(source, intent(session, 'mirror'), { appUrl: APP, relayUrl: RELAY, relay })
    await everyone()
    net.goOffline(session.owner.node)
    const target = await accept(response.resume_url)
    expect(target.record.messages.map((m) => m.content)).toEqual(['hello'])
    const grants = helper.engine.wire.keyGrants().map(decodeKeyGrant).filter((g) => Buffer.from(g.recipient).equals(Buffer.from(target.engine.device.publicKey)))
    expect(grants.map((g) => toBase64Url(g.issuer))).toEqual([toBase64Url(helper.engine.device.publicKey)])
  }, 15_000)
})

describe('handoff tokens refused', () => {
  it('reused, expired, forged, tampered, unregistered and wrong-session tokens, each with its code', async () => {
    const { session, relay, registry, accept } = await world()
    const source = session.owner.engine
    const first = await initiateHandoff(source, intent(session, 'mirror'), { appUrl: APP, relayUrl: RELAY, relay })
    await accept(first.resume_url)
    await expect(accept(first.resume_url)).rejects.toMatchObject({ code: 'already_used' })

    const late = await initiateHandoff(source, intent(session, 'mirror'), { appUrl: APP, relayUrl: RELAY, relay })
    await expect(accept(late.resume_url, { now: () => Date.now() + 6 * 60_000 })).rejects.toMatchObject({ code: 'expired' })

    const payload = parseResumeLink((await initiateHandoff(source, intent(session, 'observe'), { appUrl: APP, relayUrl: RELAY, relay })).resume_url)
    const forgedBytes = payload.token.bytes.slice()
    forgedBytes[forgedBytes.length - 1]! ^= 1 // the signature
    const forged = encodeResumeLink(APP, { ...payload, token: { ...payload.token, bytes: forgedBytes, signature: forgedBytes.subarray(forgedBytes.length - 64) } })
    await expect(accept(forged)).rejects.toMatchObject({ code: 'bad_signature' })
    const tampered = encodeResumeLink(APP, { ...payload, token: { ...payload.token, bytes: payload.token.bytes.map((b, i) => (i === 30 ? b ^ 1 : b)) } })
    await expect(accept(tampered)).rejects.toMatchObject({ code: expect.stringMatching(/bad_signature|malformed/) })
    await expect(accept(`${APP}#kai=@@@`)).rejects.toMatchObject({ code: 'invalid_input' })

    // A token its issuer never registered, and one presented for another session.
    const other = await createSimSession(new SimNetwork(seededRandom(1).gen), { compactAfter: null })
    engines.push(other.owner.engine)
    const foreign = await initiateHandoff(other.owner.engine, intent(other, 'mirror'), { appUrl: APP, relayUrl: RELAY, relay: localHandoffRelay(new HandoffRegistry({ verifier: await defaultVerifier(), mayHandOff: () => true })) })
    await expect(accept(foreign.resume_url)).rejects.toMatchObject({ code: 'not_found' })
    const body = { token: foreign.handoff_token, device: toBase64Url(new Uint8Array(32)), box: toBase64Url(new Uint8Array(32)), claim: 'AAAA' }
    await expect(registry.resume(session.sessionId, body)).rejects.toMatchObject({ code: 'wrong_session' })
  })

  it('a device that may not hand off cannot register a token', async () => {
    const { net, session, registry } = await world()
    const reader = await addReplica(net, session, { role: 'reader', compactAfter: null })
    engines.push(reader.engine)
    await settle(net, session.replicas)
    await expect(initiateHandoff(reader.engine, intent(session, 'mirror'), { appUrl: APP, relayUrl: RELAY, relay: localHandoffRelay(registry) })).rejects.toMatchObject({ code: 'forbidden' })
  })
})
