import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { WebCryptoDeviceKey, createGenesis, randomBytes, toBase64Url, type DeviceKey } from '@kai-sync/crypto'
import { decodeHandoffToken, signHandoffClaim, signHandoffToken } from '@kai-sync/crypto/handoff-token'
import { NobleDeviceKey } from '@kai-sync/crypto/noble'
import type { TransferType } from '@kai-sync/model'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { capability, closeDevice, memberDevice, ownerDevice, rawClient, type Device } from './testing/clients'

// POST /session/:id/handoff and /resume on a spawned relay, over real
// sockets: every refusal answers with its HTTP status and stable code, and
// leaves the filed token as it was.

const TTL_MS = 5 * 60_000

let relay: RelayProcess
let owner: Device
let room: string

beforeAll(async () => {
  relay = await spawnRelay(['--handoff-per-minute', '10000'])
  owner = await ownerDevice(relay.url)
  room = owner.engine.sessionId
  await owner.relay.whenSynced()
  await owner.relay.whenAcknowledged()
})
afterAll(async () => {
  closeDevice(owner)
  await relay.stop()
  relay.cleanup()
})

interface Answer {
  status: number
  body: { error?: { code: string; message: string }; [k: string]: unknown }
}

async function post(path: string, body: unknown, base = relay.httpUrl): Promise<Answer> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) })
  return { status: res.status, body: (await res.json()) as Answer['body'] }
}

/** A handoff token signed by `signer`, as its bytes in base64url. */
async function token(signer: DeviceKey, options: { sessionId?: string; transfer?: TransferType; issuedAt?: number } = {}): Promise<string> {
  const t = await signHandoffToken(
    { sessionId: options.sessionId ?? room, sourceMode: 'desktop', targetMode: 'mobile', transfer: options.transfer ?? 'mirror', invite: invite.publicKey, ...(options.issuedAt ? { issuedAt: options.issuedAt } : {}) },
    signer,
  )
  return toBase64Url(t.bytes)
}

/** The invite key every test token names: its holder signs the claims. */
const invite = await NobleDeviceKey.generate()

/** A resume body for `device` (a fresh key by default), its claim signed with the invite key. */
async function resumeBody(tok: string, device: Uint8Array = randomBytes(32), box: Uint8Array = randomBytes(32)) {
  let claim = toBase64Url(new Uint8Array(64))
  try {
    claim = toBase64Url(await signHandoffClaim(decodeHandoffToken(Buffer.from(tok, 'base64url')), invite, device, box))
  } catch {
    // A token too damaged to decode: the relay refuses it before the claim.
  }
  return { token: tok, device: toBase64Url(device), box: toBase64Url(box), claim }
}

const register = (tok: string, extra: Record<string, unknown> = {}, sid = room) => post(`/session/${sid}/handoff`, { token: tok, ...extra })
const resume = async (tok: string, sid = room) => post(`/session/${sid}/resume`, await resumeBody(tok))

function flipByte(tok: string, index: number): string {
  const bytes = Buffer.from(tok, 'base64url')
  bytes[index]! ^= 1
  return bytes.toString('base64url')
}

/** The token `forger` signed, claiming to come from `victim` (the issuer field swapped). */
async function forged(forger: DeviceKey, victim: DeviceKey): Promise<string> {
  const bytes = Buffer.from(await token(forger), 'base64url')
  const at = bytes.indexOf(Buffer.from(forger.publicKey))
  expect(at).toBeGreaterThan(0)
  bytes.set(victim.publicKey, at)
  return bytes.toString('base64url')
}

describe('register and resume', () => {
  it('a token registered by the owner resumes once, with the parked volatile state; a second resume is 409 already_used', async () => {
    const tok = await token(owner.key, { transfer: 'observe' })
    const registered = await register(tok, { volatile: 'c2VhbGVk' })
    expect(registered.status).toBe(200)
    expect(registered.body.expires_at).toBeGreaterThan(Date.now())
    expect(registered.body.expires_at).toBeLessThanOrEqual(Date.now() + TTL_MS)
    const first = await resume(tok)
    expect(first).toEqual({ status: 200, body: { transfer: 'observe', role: 'reader', volatile: 'c2VhbGVk' } })
    const again = await resume(tok)
    expect(again.status).toBe(409)
    expect(again.body.error?.code).toBe('already_used')
  })

  it('a takeover and a mirror make a writer; registering the same token twice is 409 conflict', async () => {
    const takeover = await token(owner.key, { transfer: 'takeover' })
    expect((await register(takeover)).status).toBe(200)
    const twice = await register(takeover)
    expect([twice.status, twice.body.error?.code]).toEqual([409, 'conflict'])
    expect((await resume(takeover)).body).toEqual({ transfer: 'takeover', role: 'writer' })
  })

  it('a token never registered is 404 not_found, and a GET is refused', async () => {
    const unregistered = await resume(await token(owner.key))
    expect([unregistered.status, unregistered.body.error?.code]).toEqual([404, 'not_found'])
    const get = await fetch(`${relay.httpUrl}/session/${room}/resume`)
    expect(get.status).toBe(404)
  })
})

describe('the claim', () => {
  it('binds the token to the claiming device: that device may retry and is answered again, any other is 409 already_used', async () => {
    const tok = await token(owner.key, { transfer: 'mirror' })
    expect((await register(tok)).status).toBe(200)
    const device = randomBytes(32)
    const box = randomBytes(32)
    const first = await post(`/session/${room}/resume`, await resumeBody(tok, device, box))
    expect(first).toEqual({ status: 200, body: { transfer: 'mirror', role: 'writer' } })
    // Its answer was lost on the way: the same device asks again.
    const retry = await post(`/session/${room}/resume`, await resumeBody(tok, device, box))
    expect(retry).toEqual(first)
    const other = await post(`/session/${room}/resume`, await resumeBody(tok))
    expect([other.status, other.body.error?.code]).toEqual([409, 'already_used'])
    const otherBox = await post(`/session/${room}/resume`, await resumeBody(tok, device))
    expect([otherBox.status, otherBox.body.error?.code]).toEqual([409, 'already_used'])
  })

  it('a claim not signed with the invite secret is 401 bad_signature and burns nothing', async () => {
    const tok = await token(owner.key, { transfer: 'observe' })
    expect((await register(tok)).status).toBe(200)
    const device = randomBytes(32)
    const box = randomBytes(32)
    const t = decodeHandoffToken(Buffer.from(tok, 'base64url'))
    // Someone who saw the token (not the link) signs with a key of its own.
    const wrong = toBase64Url(await signHandoffClaim(t, await NobleDeviceKey.generate(), device, box))
    const refused = await post(`/session/${room}/resume`, { token: tok, device: toBase64Url(device), box: toBase64Url(box), claim: wrong })
    expect([refused.status, refused.body.error?.code]).toEqual([401, 'bad_signature'])
    // A claim made for other keys than those sent.
    const moved = { ...(await resumeBody(tok, device, box)), device: toBase64Url(randomBytes(32)) }
    expect((await post(`/session/${room}/resume`, moved)).body.error?.code).toBe('bad_signature')
    expect((await resume(tok)).status).toBe(200)
  })
})

describe('a relay restart', () => {
  it('keeps a used token used (409 already_used, not 404) and its claim: the claiming device is still answered', async () => {
    const own = await spawnRelay()
    onTestFinished(() => own.cleanup())
    const o = await ownerDevice(own.url)
    onTestFinished(() => closeDevice(o))
    await o.relay.whenSynced()
    await o.relay.whenAcknowledged()
    const sid = o.engine.sessionId
    const tok = await token(o.key, { sessionId: sid, transfer: 'observe' })
    const unused = await token(o.key, { sessionId: sid, transfer: 'mirror' })
    expect((await post(`/session/${sid}/handoff`, { token: tok }, own.httpUrl)).status).toBe(200)
    expect((await post(`/session/${sid}/handoff`, { token: unused }, own.httpUrl)).status).toBe(200)
    const device = randomBytes(32)
    const box = randomBytes(32)
    expect((await post(`/session/${sid}/resume`, await resumeBody(tok, device, box), own.httpUrl)).status).toBe(200)
    closeDevice(o)
    await own.stop()
    const again = await own.restart()
    onTestFinished(async () => {
      await again.stop()
    })
    const late = await post(`/session/${sid}/resume`, await resumeBody(tok), again.httpUrl)
    expect([late.status, late.body.error?.code]).toEqual([409, 'already_used'])
    expect((await post(`/session/${sid}/resume`, await resumeBody(tok, device, box), again.httpUrl)).body).toEqual({ transfer: 'observe', role: 'reader' })
    // A token registered and not used before the restart is still good once.
    expect((await post(`/session/${sid}/resume`, await resumeBody(unused), again.httpUrl)).body).toEqual({ transfer: 'mirror', role: 'writer' })
  })
})

describe('refused tokens', () => {
  it('an expired token is 410 expired, at register and at resume', async () => {
    const stale = await token(owner.key, { issuedAt: Date.now() - TTL_MS - 1000 })
    const late = await register(stale)
    expect([late.status, late.body.error?.code]).toEqual([410, 'expired'])
    // Registered in its last second, resumed after it.
    const closeToExpiry = await token(owner.key, { issuedAt: Date.now() - TTL_MS + 1000 })
    expect((await register(closeToExpiry)).status).toBe(200)
    await new Promise((r) => setTimeout(r, 1500))
    const expired = await resume(closeToExpiry)
    expect([expired.status, expired.body.error?.code]).toEqual([410, 'expired'])
  })

  it('a forged token (another key\'s signature under the owner\'s name) is 401 bad_signature', async () => {
    const forger = await WebCryptoDeviceKey.generate()
    const fake = await forged(forger, owner.key)
    const refused = await register(fake)
    expect([refused.status, refused.body.error?.code]).toEqual([401, 'bad_signature'])
    const refusedResume = await resume(fake)
    expect([refusedResume.status, refusedResume.body.error?.code]).toEqual([401, 'bad_signature'])
  })

  it('a tampered token (one byte of its id changed) is 401 bad_signature', async () => {
    const tok = await token(owner.key)
    expect((await register(tok)).status).toBe(200)
    const tampered = flipByte(tok, 6)
    const refused = await resume(tampered)
    expect([refused.status, refused.body.error?.code]).toEqual([401, 'bad_signature'])
    expect((await register(tampered)).body.error?.code).toBe('bad_signature')
  })

  it('a token presented for another session is 400 wrong_session', async () => {
    const other = (await createGenesis(owner.key, 'other')).sessionId
    const tok = await token(owner.key)
    expect((await register(tok)).status).toBe(200)
    const refused = await resume(tok, other)
    expect([refused.status, refused.body.error?.code]).toEqual([400, 'wrong_session'])
    const misfiled = await register(await token(owner.key), {}, other)
    expect([misfiled.status, misfiled.body.error?.code]).toEqual([400, 'wrong_session'])
  })

  it('a token issued by a reader or by a device outside the roster is 403 forbidden', async () => {
    const reader = await memberDevice(relay.url, owner, 'reader')
    onTestFinished(() => closeDevice(reader))
    const byReader = await register(await token(reader.key))
    expect([byReader.status, byReader.body.error?.code]).toEqual([403, 'forbidden'])
    const stranger = await WebCryptoDeviceKey.generate()
    const byStranger = await register(await token(stranger))
    expect([byStranger.status, byStranger.body.error?.code]).toEqual([403, 'forbidden'])
    // A room that does not exist has no one who may hand it off.
    const nowhere = await createGenesis(stranger, 'never created')
    const inNowhere = await register(await token(stranger, { sessionId: nowhere.sessionId }), {}, nowhere.sessionId)
    expect([inNowhere.status, inNowhere.body.error?.code]).toEqual([403, 'forbidden'])
  })
})

describe('an issuer that lost the right to hand off', () => {
  it('its registered token is 403 forbidden at resume and stays unburned: it resumes once the issuer is a writer again', async () => {
    const writer = await memberDevice(relay.url, owner, 'writer')
    onTestFinished(() => closeDevice(writer))
    const tok = await token(writer.key)
    expect((await register(tok)).status).toBe(200)
    await owner.engine.setRole(writer.key.publicKey, 'reader', { label: 'demoted' })
    await owner.relay.whenAcknowledged()
    const refused = await resume(tok)
    expect([refused.status, refused.body.error?.code]).toEqual([403, 'forbidden'])
    await owner.engine.setRole(writer.key.publicKey, 'writer', { label: 'writer again' })
    await owner.relay.whenAcknowledged()
    expect((await resume(tok)).status).toBe(200)
  })

  it('a target that resumed before the issuer was removed may no longer connect to enroll: 4403', async () => {
    const writer = await memberDevice(relay.url, owner, 'writer')
    onTestFinished(() => closeDevice(writer))
    const tok = await token(writer.key, { transfer: 'mirror' })
    expect((await register(tok)).status).toBe(200)
    const target = await WebCryptoDeviceKey.generate()
    const resumed = await post(`/session/${room}/resume`, await resumeBody(tok, target.publicKey))
    expect(resumed.status).toBe(200)
    await owner.engine.setRole(writer.key.publicKey, 'removed', { label: 'removed' })
    await owner.relay.whenAcknowledged()
    const client = await rawClient(relay.url, room, await capability(target, room))
    // An enrollee would be sent the room's sync step 1 at once; this one waits out the grace, hears nothing, and is refused.
    expect((await client.closed).code).toBe(4403)
    expect(client.received).toEqual([])
  })
})

describe('refused requests', () => {
  it('malformed JSON and bodies that break the schema are 400 invalid_input', async () => {
    const tok = await token(owner.key)
    const cases: unknown[] = [
      '{"token": ',
      'null',
      {},
      { token: 'not base64url!' },
      { token: tok, volatile: 42 },
      { token: tok, volatile: '***' },
    ]
    for (const body of cases) {
      const answer = await post(`/session/${room}/handoff`, body)
      expect([answer.status, answer.body.error?.code], JSON.stringify(body)).toEqual([400, 'invalid_input'])
    }
    expect((await register(tok)).status).toBe(200)
    const resumes: unknown[] = [{ token: tok }, { token: tok, device: 'AAAA', box: 'AAAA', claim: 'AAAA' }, { ...(await resumeBody(tok)), device: 7 }, { ...(await resumeBody(tok)), claim: undefined }]
    for (const body of resumes) {
      const answer = await post(`/session/${room}/resume`, body)
      expect([answer.status, answer.body.error?.code], JSON.stringify(body)).toEqual([400, 'invalid_input'])
    }
  })

  it('a body over 384 KiB is 413 too_large, declared or streamed', async () => {
    const big = JSON.stringify({ token: await token(owner.key), volatile: 'A'.repeat(400 * 1024) })
    const declared = await rawPost(`/session/${room}/handoff`, big, { 'content-length': String(Buffer.byteLength(big)) })
    expect([declared.status, declared.code]).toEqual([413, 'too_large'])
    const chunked = await rawPost(`/session/${room}/handoff`, big, { 'transfer-encoding': 'chunked' })
    expect([chunked.status, chunked.code]).toEqual([413, 'too_large'])
  })

  it('sealed volatile state up to 256 KiB is parked with the token and handed back whole', async () => {
    // Regression: the body schema once capped it at 200,000 base64 characters (~146 KiB).
    const sealed = Buffer.alloc(256 * 1024, 7).toString('base64url')
    const tok = await token(owner.key)
    expect((await register(tok, { volatile: sealed })).status).toBe(200)
    expect((await resume(tok)).body.volatile).toBe(sealed)
    const over = await register(await token(owner.key), { volatile: sealed + 'AAAA' })
    expect(over.status).toBe(400)
  })

  it('a failed resume leaves the token usable: after every refusal above, it still resumes once', async () => {
    const tok = await token(owner.key, { transfer: 'mirror' })
    expect((await register(tok)).status).toBe(200)
    const other = (await createGenesis(owner.key, 'elsewhere')).sessionId
    expect((await resume(flipByte(tok, 10))).body.error?.code).toBe('bad_signature')
    expect((await resume(tok, other)).body.error?.code).toBe('wrong_session')
    expect((await post(`/session/${room}/resume`, { ...(await resumeBody(tok)), device: 'AAAA' })).body.error?.code).toBe('invalid_input')
    expect((await post(`/session/${room}/resume`, '{"token":')).body.error?.code).toBe('invalid_input')
    const big = JSON.stringify({ ...(await resumeBody(tok)), pad: 'A'.repeat(400 * 1024) })
    expect((await rawPost(`/session/${room}/resume`, big, { 'content-length': String(big.length) })).code).toBe('too_large')
    expect((await register(tok)).body.error?.code).toBe('conflict')
    const ok = await resume(tok)
    expect(ok).toEqual({ status: 200, body: { transfer: 'mirror', role: 'writer' } })
  })

  it('counts requests by outcome and never logs a token', async () => {
    const tok = await token(owner.key)
    expect((await register(tok)).status).toBe(200)
    expect((await resume(tok)).status).toBe(200)
    const metrics = await (await fetch(`${relay.httpUrl}/metrics`)).text()
    expect(metrics).toMatch(/kai_relay_handoff_requests_total\{action="handoff",code="ok"\} [1-9]/)
    expect(metrics).toMatch(/kai_relay_handoff_requests_total\{action="resume",code="already_used"\} [1-9]/)
    expect(metrics).toMatch(/kai_relay_handoff_requests_total\{action="resume",code="bad_signature"\} [1-9]/)
    const logs = relay.logs.join('\n')
    expect(logs).toContain('handoff resumed')
    expect(logs).not.toContain(tok.slice(0, 40))
    expect(logs).not.toContain(tok.slice(-40))
  })
})

describe('rate limit', () => {
  it('more than --handoff-per-minute requests from one address in a minute are 429 rate_limited', async () => {
    const limited = await spawnRelay(['--handoff-per-minute', '3'])
    onTestFinished(async () => {
      await limited.stop()
      limited.cleanup()
    })
    // The window is the calendar minute: do not start in its last seconds.
    const intoMinute = Date.now() % 60_000
    if (intoMinute > 55_000) await new Promise((r) => setTimeout(r, 60_500 - intoMinute))
    const tok = await token(owner.key)
    const answers = []
    for (let i = 0; i < 3; i++) answers.push((await post(`/session/${room}/resume`, await resumeBody(tok), limited.httpUrl)).status)
    // Refused, but not for the rate: the room is not on this relay.
    expect(answers).toEqual([404, 404, 404])
    const over = await post(`/session/${room}/handoff`, { token: tok }, limited.httpUrl)
    expect([over.status, over.body.error?.code]).toEqual([429, 'rate_limited'])
    expect(over.body.error?.message).toMatch(/wait a minute/)
    // Other endpoints are not limited.
    expect((await fetch(`${limited.httpUrl}/healthz`)).status).toBe(200)
  })
})

/** A POST over a plain socket, so an early answer to an oversized upload is read whatever happens to the upload. */
function rawPost(path: string, body: string, headers: Record<string, string>): Promise<{ status: number; code: string | undefined }> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, relay.httpUrl)
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => (text += c.toString()))
      res.on('end', () => {
        const json = JSON.parse(text) as { error?: { code: string } }
        resolve({ status: res.statusCode ?? 0, code: json.error?.code })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}
