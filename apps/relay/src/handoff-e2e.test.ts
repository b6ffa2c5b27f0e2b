import * as Y from 'yjs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { BoxKey, SessionKey, SessionKeyring, WebCryptoDeviceKey, decodeEnvelope, openEnvelope, toBase64Url, type SignatureVerifier } from '@kai-sync/crypto'
import { signHandoffClaim, signHandoffToken } from '@kai-sync/crypto/handoff-token'
import { NobleDeviceKey } from '@kai-sync/crypto/noble'
import type { SyncEngine } from '@kai-sync/engine'
import { encodeResumeLink, httpHandoffRelay, initiateHandoff, parseResumeLink, resumeLinkBytes } from '@kai-sync/handoff'
import type { TransferType, VolatileState } from '@kai-sync/model'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { capability, closeDevice, eventually, ownerDevice, rawClient, updateFrame, wireOnRelay, type Device } from './testing/clients'
import { craftUpdate, sealedBy } from './testing/forge'
import { messagesOnRelay } from './testing/session-view'
import { acceptThroughRelay, type HandoffTarget } from './testing/handoff'
import { CloseCode } from './close-codes'

// Handoff through a spawned kai-relay, over real sockets: the source and
// the target are separate engines with their own wire docs and device keys,
// each connected with connectRelay; the token is registered and burned by
// the relay's HTTP endpoints; the link's fragment carries the invite secret
// and no key: the source grants the keys to the target's box.

const APP = 'https://kai.example/resume'

let relay: RelayProcess
beforeAll(async () => {
  // A short membership grace: a handoff target must not depend on it.
  relay = await spawnRelay(['--membership-grace-ms', '300'])
})
afterAll(async () => {
  await relay.stop()
  relay.cleanup()
})

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c()
})

async function source(): Promise<Device> {
  const d = await ownerDevice(relay.url, { box: await BoxKey.generate() })
  cleanups.push(() => closeDevice(d))
  await d.relay.whenSynced()
  return d
}

/** The target device, torn down after the test. */
async function accept(link: string, options: Parameters<typeof acceptThroughRelay>[1] = {}): Promise<HandoffTarget> {
  const target = await acceptThroughRelay(link, options)
  cleanups.push(() => target.close())
  return target
}

async function handOff(from: Device, transfer: TransferType, volatile?: VolatileState) {
  const response = await initiateHandoff(
    from.engine,
    { session_id: from.engine.sessionId, source_mode: 'desktop', target_mode: 'mobile', transfer_type: transfer, ...(volatile ? { volatile } : {}) },
    { appUrl: APP, relayUrl: relay.url, relay: httpHandoffRelay(relay.url) },
  )
  // The invite's roster entry must be on the relay before the target enrolls with it.
  await from.engine.flush()
  await from.relay.whenAcknowledged()
  return response
}

const idOf = (key: { publicKey: Uint8Array }) => toBase64Url(key.publicKey)

/** The resume body a target sends for `device`, its claim signed with the link's invite secret (what acceptHandoff does). */
async function claimBody(link: string, device: Uint8Array, box: Uint8Array = new Uint8Array(32).fill(3)) {
  const { token, inviteSecret } = parseResumeLink(link)
  const claim = await signHandoffClaim(token, await NobleDeviceKey.fromSecret(inviteSecret), device, box)
  return { token: toBase64Url(token.bytes), device: toBase64Url(device), box: toBase64Url(box), claim: toBase64Url(claim) }
}

/** How many resume requests the relay has answered, whatever the outcome. */
async function resumeRequests(): Promise<number> {
  const metrics = await (await fetch(`${relay.httpUrl}/metrics`)).text()
  return [...metrics.matchAll(/kai_relay_handoff_requests_total\{action="resume",code="[a-z_]+"\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0)
}

/** Every 32-byte window of `bytes`. */
const windows = (bytes: Uint8Array) => Array.from({ length: bytes.length - 31 }, (_, i) => bytes.subarray(i, i + 32))

describe('handoff through a real relay', () => {
  it('takeover: the target writes, the source becomes read-only, learns where the session went, and both audit it', async () => {
    const src = await source()
    src.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'before the handoff' })
    const moved: Array<{ device: string; label: string }> = []
    src.engine.on('moved', (to) => moved.push({ device: to.device, label: to.label }))
    const target = await accept((await handOff(src, 'takeover')).resume_url, { label: 'Pixel 8' })

    expect(target.transfer).toBe('takeover')
    expect(target.record.messages.map((m) => m.content)).toEqual(['before the handoff'])
    expect(target.engine.role).toBe('writer')
    await eventually(() => src.engine.role === 'reader', 10_000, 'the source to step down')
    expect(moved).toEqual([{ device: idOf(target.device), label: 'Pixel 8' }])
    expect(src.engine.canWrite).toBe(false)
    expect(() => src.engine.session.appendMessage({ id: 'no', role: 'user', content: 'no' })).toThrow(/forbidden/)
    // The target hears the 'moved' control too.
    await eventually(() => target.engine.roster.roleOf(src.key.publicKey) === 'reader', 10_000, 'the step-down at the target')

    target.engine.session.appendMessage({ id: 'm2', role: 'user', content: 'continued on the phone' })
    await eventually(() => src.engine.session.message('m2')?.content === 'continued on the phone', 10_000, 'the target\'s write at the source')

    // The relay, not only the engine, refuses what the stepped-down source signs now.
    const late = await sealedBy(src.key, src.engine.sessionId, src.engine.keys.current)
    const raw = await rawClient(relay.url, src.engine.sessionId, await capability(src.key, src.engine.sessionId))
    raw.send(updateFrame(craftUpdate(src.wire.doc, (w) => w.append([late], null))))
    expect((await raw.closed).code).toBe(CloseCode.Forbidden)

    const audit = (e: SyncEngine) => e.session.audit().map((a) => `${a.action} by ${a.actor === idOf(src.key) ? 'source' : a.actor === idOf(target.device) ? 'target' : a.actor}`)
    const expected = ['handoff.initiated by source', 'handoff.completed by source', 'handoff.accepted by target']
    await eventually(() => expected.every((x) => audit(src.engine).includes(x) && audit(target.engine).includes(x)), 10_000, 'the audit entries on both sides')
  })

  it('mirror: both devices write, and both (and the relay) converge', async () => {
    const src = await source()
    const target = await accept((await handOff(src, 'mirror')).resume_url)
    expect([src.engine.role, target.engine.role]).toEqual(['owner', 'writer'])
    src.engine.session.appendMessage({ id: 'from-source', role: 'user', content: 'source writes' })
    target.engine.session.appendMessage({ id: 'from-target', role: 'assistant', content: 'target writes' })
    const both = (e: SyncEngine) => ['from-source', 'from-target'].every((id) => e.session.message(id))
    await eventually(() => both(src.engine) && both(target.engine), 10_000, 'both messages on both devices')
    await src.engine.flush()
    await target.engine.flush()
    expect(target.engine.session.messageIds()).toEqual(src.engine.session.messageIds())
    const onRelay = await messagesOnRelay(relay.url, src.engine.sessionId, src.key, src.engine.keys.current, 2)
    expect(onRelay).toEqual(expect.arrayContaining(['from-source', 'from-target']))
  })

  it('observe: the target reads; its engine refuses to write, and the relay refuses what it signs with 4403', async () => {
    const src = await source()
    src.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'watch this' })
    const target = await accept((await handOff(src, 'observe')).resume_url)
    expect(target.engine.role).toBe('reader')
    expect(target.record.messages.map((m) => m.id)).toEqual(['m1'])
    expect(() => target.engine.session.appendMessage({ id: 'x', role: 'user', content: 'x' })).toThrow(/forbidden/)

    const before = await (await fetch(`${relay.httpUrl}/metrics`)).text()
    const rejections = Number(/kai_relay_rejections_total\{code="4403"\} (\d+)/.exec(before)?.[1] ?? 0)
    const envelope = await sealedBy(target.device, src.engine.sessionId, src.engine.keys.current)
    const raw = await rawClient(relay.url, src.engine.sessionId, await capability(target.device, src.engine.sessionId))
    raw.send(updateFrame(craftUpdate(target.engine.wire.doc, (w) => w.append([envelope], null))))
    expect((await raw.closed).code).toBe(CloseCode.Forbidden)
    const after = await (await fetch(`${relay.httpUrl}/metrics`)).text()
    expect(Number(/kai_relay_rejections_total\{code="4403"\} (\d+)/.exec(after)?.[1])).toBe(rejections + 1)
    // It reached no one: the relay did not merge it, so the source never sees it.
    src.engine.session.appendMessage({ id: 'm2', role: 'user', content: 'still live' })
    await eventually(() => target.engine.session.message('m2') !== undefined, 10_000, 'the source\'s next message at the observer')
    const sameBytes = (e: Uint8Array) => Buffer.from(e).equals(Buffer.from(envelope))
    expect(src.wire.envelopes().some(sameBytes)).toBe(false)
    expect((await wireOnRelay(relay.url, src.engine.sessionId, src.key)).envelopes().some(sameBytes)).toBe(false)
  })

  it('a half-streamed reply continues on the target with the source\'s volatile state', async () => {
    const src = await source()
    src.engine.session.appendMessage({ id: 'q', role: 'user', content: 'What is the capital of Portugal?' })
    src.engine.session.startStream({ id: 'reply', role: 'assistant' })
    src.engine.session.streamText('reply', 'The capital of Portugal is Lis')
    await src.engine.flush()
    const volatile: VolatileState = {
      active_tools: ['search'],
      streaming: { message_id: 'reply', buffer: 'The capital of Portugal is Lis' },
      scratchpad: 'user prefers short answers',
      ui_state: { draft: 'and what about Spa' },
    }
    const target = await accept((await handOff(src, 'takeover', volatile)).resume_url)
    expect(target.volatile).toEqual(volatile)
    const { message_id } = target.volatile!.streaming!
    expect(target.engine.session.message(message_id)).toMatchObject({ content: 'The capital of Portugal is Lis', status: 'streaming' })
    for (const token of ['b', 'on', '.']) target.engine.session.streamText(message_id, token)
    target.engine.session.finishStream(message_id)
    await eventually(() => src.engine.session.message('reply')?.status === 'complete', 10_000, 'the finished reply at the source')
    expect(src.engine.session.message('reply')?.content).toBe('The capital of Portugal is Lisbon.')
  })

  it('a removed device is cut off by the relay and cannot decrypt what is written after its removal', async () => {
    const src = await source()
    const keeper = await accept((await handOff(src, 'mirror')).resume_url, { label: 'keeper' })
    const removed = await accept((await handOff(src, 'mirror')).resume_url, { label: 'removed' })
    src.engine.session.appendMessage({ id: 'before', role: 'user', content: 'everyone reads this' })
    await eventually(() => removed.engine.session.message('before') !== undefined && keeper.engine.session.message('before') !== undefined, 10_000, 'the first message everywhere')

    const epoch = await src.engine.removeDevice(removed.device.publicKey)
    expect(epoch.epoch).toBe(1)
    await src.engine.flush()
    await src.relay.whenAcknowledged()
    await eventually(() => removed.closes.some((c) => c.code === CloseCode.Forbidden), 10_000, 'the relay to close the removed device with 4403')
    const again = await rawClient(relay.url, src.engine.sessionId, await capability(removed.device, src.engine.sessionId))
    expect((await again.closed).code).toBe(CloseCode.Forbidden)

    src.engine.session.appendMessage({ id: 'after', role: 'user', content: 'SECRET after the removal' })
    await src.engine.flush()
    await src.relay.whenAcknowledged()
    // The remaining member was granted the new epoch's key and reads on.
    await eventually(() => keeper.engine.session.message('after')?.content === 'SECRET after the removal', 10_000, 'the keeper to read epoch 1')
    expect(keeper.engine.keys.has(1)).toBe(true)

    // Even handed the whole room, the removed device holds no key to epoch 1.
    const room = await wireOnRelay(relay.url, src.engine.sessionId, src.key)
    const rejected: string[] = []
    removed.engine.on('rejected', (r) => rejected.push(r.code))
    Y.applyUpdate(removed.engine.wire.doc, Y.encodeStateAsUpdate(room.doc))
    await removed.engine.whenIdle()
    expect(removed.engine.keys.has(1)).toBe(false)
    expect(removed.engine.session.message('after')).toBeUndefined()
    expect(rejected).toContain('wrong_epoch')
  })
})

describe('admission of a handoff target', () => {
  it('a target that gets to the relay before the invite does (the source was offline) waits for it and enrolls', async () => {
    const src = await source()
    src.relay.provider.disconnect()
    await eventually(() => !src.relay.provider.wsconnected, 5000, 'the source to go offline')
    const response = await initiateHandoff(
      src.engine,
      { session_id: src.engine.sessionId, source_mode: 'desktop', target_mode: 'mobile', transfer_type: 'mirror' },
      { appUrl: APP, relayUrl: relay.url, relay: httpHandoffRelay(relay.url) },
    )
    const accepting = accept(response.resume_url)
    await new Promise((r) => setTimeout(r, 1000))
    src.relay.provider.connect()
    const target = await accepting
    expect(target.engine.role).toBe('writer')
    target.engine.session.appendMessage({ id: 'late', role: 'user', content: 'enrolled after the invite arrived' })
    await eventually(() => src.engine.session.message('late') !== undefined, 10_000, 'the target\'s message at the source')
  })

  it('a device that resumed syncs before its roster entry exists, past the membership grace, but may not write until it enrolls', async () => {
    const src = await source()
    const response = await handOff(src, 'mirror')
    const device = await WebCryptoDeviceKey.generate()
    const sid = src.engine.sessionId
    const body = await claimBody(response.resume_url, device.publicKey)
    const stranger = await WebCryptoDeviceKey.generate()
    const before = await rawClient(relay.url, sid, await capability(stranger, sid))
    expect(before.received).toEqual([])

    await httpHandoffRelay(relay.url).resume(sid, body)
    const client = await rawClient(relay.url, sid, await capability(device, sid))
    await eventually(() => client.received.some((m) => m[0] === 0 && m[1] === 0), 5000, 'the relay\'s sync step 1 to the resumed device')
    await new Promise((r) => setTimeout(r, 600)) // twice the grace
    expect(client.ws.readyState).toBe(client.ws.OPEN)
    // The device that did not resume got nothing and was refused at the grace.
    expect((await before.closed).code).toBe(CloseCode.Forbidden)
    expect(before.received).toEqual([])

    const envelope = await sealedBy(device, sid, src.engine.keys.current)
    client.send(updateFrame(craftUpdate(src.wire.doc, (w) => w.append([envelope], null))))
    expect((await client.closed).code).toBe(CloseCode.Forbidden)
  })
})

describe('a handoff target that never enrolls', () => {
  it('is closed with 4403 at the enrollment deadline, having synced meanwhile', async () => {
    const strict = await spawnRelay(['--enrollment-deadline-ms', '1500'])
    try {
      const owner = await ownerDevice(strict.url, { box: await BoxKey.generate() })
      cleanups.push(() => closeDevice(owner))
      await owner.relay.whenSynced()
      const response = await initiateHandoff(
        owner.engine,
        { session_id: owner.engine.sessionId, source_mode: 'desktop', target_mode: 'mobile', transfer_type: 'mirror' },
        { appUrl: APP, relayUrl: strict.url, relay: httpHandoffRelay(strict.url) },
      )
      await owner.engine.flush()
      await owner.relay.whenAcknowledged()
      const device = await WebCryptoDeviceKey.generate()
      const sid = owner.engine.sessionId
      await httpHandoffRelay(strict.url).resume(sid, await claimBody(response.resume_url, device.publicKey))
      const client = await rawClient(strict.url, sid, await capability(device, sid))
      await eventually(() => client.received.some((m) => m[0] === 0 && m[1] === 0), 5000, 'the relay\'s sync step 1 to the resumed device')
      const opened = Date.now()
      // It sends no roster entry: the relay lets it go at the deadline, not before.
      expect((await client.closed).code).toBe(CloseCode.Forbidden)
      expect(Date.now() - opened).toBeGreaterThan(1000)
    } finally {
      await strict.stop()
      strict.cleanup()
    }
  })
})

describe('handoff tokens refused through the relay', () => {
  /** Trusts every signature: what the target would do without its own check, so the relay's answer shows. */
  const trusting: SignatureVerifier = { name: 'noble', verify: async () => true }

  it('reused, expired, forged, tampered and wrong-session tokens are refused with their codes, and leave a good link usable', async () => {
    const src = await source()
    const sid = src.engine.sessionId
    const used = await handOff(src, 'mirror')
    await accept(used.resume_url)
    await expect(accept(used.resume_url)).rejects.toMatchObject({ code: 'already_used' })

    const link = (await handOff(src, 'observe')).resume_url
    const payload = parseResumeLink(link)
    const withBytes = (bytes: Uint8Array) => encodeResumeLink(APP, { ...payload, token: { ...payload.token, bytes, signature: bytes.subarray(bytes.length - 64) } })
    const forgedBytes = payload.token.bytes.slice()
    forgedBytes[forgedBytes.length - 1]! ^= 1
    const tamperedBytes = payload.token.bytes.slice()
    tamperedBytes[8]! ^= 1 // a byte of the token id
    for (const bad of [withBytes(forgedBytes), withBytes(tamperedBytes)]) {
      // Refused by the target's own check, and by the relay when the target skips it.
      await expect(accept(bad)).rejects.toMatchObject({ code: 'bad_signature' })
      await expect(accept(bad, { verifier: trusting })).rejects.toMatchObject({ code: 'bad_signature' })
    }

    // A token presented at another session's endpoint.
    const other = await source()
    const body = await claimBody(link, new Uint8Array(32).fill(1), new Uint8Array(32).fill(2))
    await expect(httpHandoffRelay(relay.url).resume(other.engine.sessionId, body)).rejects.toMatchObject({ code: 'wrong_session' })

    // Expired at the relay: registered in its last second, presented after it by a target whose clock is behind.
    const stale = await signHandoffToken(
      { sessionId: sid, sourceMode: 'desktop', targetMode: 'mobile', transfer: 'mirror', invite: payload.token.invite, issuedAt: Date.now() - 5 * 60_000 + 1000 },
      src.key,
    )
    await httpHandoffRelay(relay.url).register(sid, { token: toBase64Url(stale.bytes) })
    await new Promise((r) => setTimeout(r, 1500))
    const staleLink = encodeResumeLink(APP, { ...payload, token: stale })
    await expect(accept(staleLink)).rejects.toMatchObject({ code: 'expired' })
    await expect(accept(staleLink, { now: () => Date.now() - 60_000 })).rejects.toMatchObject({ code: 'expired' })

    // None of that burned the good token.
    const observer = await accept(link)
    expect(observer.engine.role).toBe('reader')
  })
})

describe('a link seen later opens nothing', () => {
  it('no 32 bytes of a used or an expired link decrypt any envelope on the relay; the target read the session by grant', async () => {
    const src = await source()
    src.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'SECRET in the session' })
    const used = (await handOff(src, 'mirror')).resume_url
    const target = await accept(used)
    expect(target.record.messages.map((m) => m.content)).toEqual(['SECRET in the session'])
    const expired = (await handOff(src, 'observe')).resume_url
    await src.engine.flush()
    await src.relay.whenAcknowledged()
    await expect(accept(used)).rejects.toMatchObject({ code: 'already_used' })
    await expect(accept(expired, { now: () => Date.now() + 6 * 60_000 })).rejects.toMatchObject({ code: 'expired' })

    // What someone with a photo of either code and the relay's ciphertext holds.
    const envelopes = (await wireOnRelay(relay.url, src.engine.sessionId, src.key)).envelopes().map(decodeEnvelope)
    expect(envelopes.length).toBeGreaterThan(0)
    let tried = 0
    for (const link of [used, expired]) {
      const bytes = resumeLinkBytes(link)
      // The fragment is what the old format's keys made long: say how long it is now.
      console.info(`resume link: ${link.length} characters, fragment ${bytes.length} bytes`)
      for (const candidate of windows(bytes)) {
        for (const env of envelopes) {
          const keys = new SessionKeyring([await SessionKey.fromRaw(env.header.epoch, candidate)])
          await expect(openEnvelope(env, keys)).rejects.toMatchObject({ code: 'decrypt_failed' })
          tried++
        }
      }
    }
    expect(tried).toBeGreaterThan(100)
    // The source's own key does open them: the check above could have succeeded.
    await expect(openEnvelope(envelopes[0]!, src.engine.keys)).resolves.toBeInstanceOf(Uint8Array)
  })
})

describe('a retry by the device that used the link', () => {
  it('succeeds (its first answer was lost), while another device is told already_used', async () => {
    const src = await source()
    src.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'hello' })
    const link = (await handOff(src, 'mirror')).resume_url
    const device = await WebCryptoDeviceKey.generate()
    const box = await BoxKey.generate()
    // The first attempt's claim reached the relay, and its answer never came back.
    await httpHandoffRelay(relay.url).resume(src.engine.sessionId, await claimBody(link, device.publicKey, box.publicKey))
    const again = await accept(link, { device, box, label: 'phone' })
    expect(again.engine.role).toBe('writer')
    expect(again.record.messages.map((m) => m.content)).toEqual(['hello'])
    await expect(accept(link)).rejects.toMatchObject({ code: 'already_used' })
  })
})

describe('a link is checked whole before anything is spent', () => {
  it('with any one byte of its fragment changed it is refused with a clear code, nobody enrolls, and the untouched link then works', async () => {
    const src = await source()
    src.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'hello' })
    const link = (await handOff(src, 'mirror')).resume_url
    const bytes = resumeLinkBytes(link)
    const base = link.slice(0, link.indexOf('#kai=') + 5)
    const members = src.engine.roster.list().length
    const resumesBefore = await resumeRequests()
    const codes = new Set<string>()
    for (let i = 0; i < bytes.length; i++) {
      const damaged = bytes.slice()
      damaged[i]! ^= 0x20
      const error = await accept(base + toBase64Url(damaged)).then(
        () => null,
        (e: { code?: string; message?: string }) => e,
      )
      expect(error, `byte ${i}`).not.toBeNull()
      expect(['malformed', 'unsupported_version', 'bad_signature', 'invalid_input'], `byte ${i}: ${error!.message}`).toContain(error!.code)
      // The message names its code once.
      expect(error!.message!.split(`${error!.code}:`).length, error!.message).toBe(2)
      codes.add(error!.code!)
    }
    expect(codes.has('unsupported_version') && codes.has('malformed')).toBe(true)
    await src.engine.whenIdle()
    expect(src.engine.roster.list().length).toBe(members)
    // Not one of them reached the relay's resume endpoint.
    expect(await resumeRequests()).toBe(resumesBefore)
    const target = await accept(link)
    expect(target.engine.role).toBe('writer')
    expect(target.record.messages.map((m) => m.content)).toEqual(['hello'])
  })
})
