import { afterAll, beforeAll, expect, it } from 'vitest'
import { BoxKey, randomBytes, toBase64Url } from '@kai-sync/crypto'
import { httpHandoffRelay, initiateHandoff, parseResumeLink } from '@kai-sync/handoff'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { capability, closeDevice, eventually, ownerDevice, rawClient, type Device } from './testing/clients'
import { acceptThroughRelay, type HandoffTarget } from './testing/handoff'

// "No secret is ever logged", as a rule of the logger rather than each
// caller's care: a kai-relay process at debug level logs every request and
// upgrade with its URL and headers, and real traffic carrying every kind
// of secret (capabilities in upgrade URLs, a bearer token and a cookie in
// headers, a handoff with its token and link, a key grant to the target)
// leaves none of them in its output. Without the redaction rules in
// @kai-sync/log this test fails (the capabilities and the bearer token
// show up).

let relay: RelayProcess
let owner: Device
let target: HandoffTarget
const secrets: string[] = []

beforeAll(async () => {
  relay = await spawnRelay()
  owner = await ownerDevice(relay.url, { box: await BoxKey.generate() })
  await owner.relay.whenSynced()
  const room = owner.engine.sessionId

  // A capability we hold the text of, in an upgrade URL.
  const cap = await capability(owner.key, room)
  secrets.push(cap)
  const raw = await rawClient(relay.url, room, cap)
  await eventually(() => raw.received.length > 0, 10_000, 'the raw client\'s sync step 1')
  raw.ws.close()

  // Credentials a client or a proxy in front of the relay may send along.
  const bearer = toBase64Url(randomBytes(24))
  const cookie = toBase64Url(randomBytes(24))
  const queryToken = toBase64Url(randomBytes(24))
  secrets.push(bearer, cookie, queryToken)
  await (await fetch(`${relay.httpUrl}/healthz?token=${queryToken}`, { headers: { authorization: `Bearer ${bearer}`, cookie: `session=${cookie}` } })).text()

  // A handoff: the token is registered and burned, the link's fragment
  // carries the invite secret, and the source grants the keys to the target.
  const handoff = await initiateHandoff(
    owner.engine,
    { session_id: room, source_mode: 'desktop', target_mode: 'mobile', transfer_type: 'mirror' },
    { appUrl: 'https://kai.example/resume', relayUrl: relay.url, relay: httpHandoffRelay(relay.url) },
  )
  await owner.engine.flush()
  await owner.relay.whenAcknowledged()
  const link = handoff.resume_url
  secrets.push(link, link.split('#')[1]!, handoff.handoff_token, toBase64Url(parseResumeLink(link).inviteSecret))
  target = await acceptThroughRelay(link)
  await eventually(() => target.engine.keys.current.epoch === owner.engine.keys.current.epoch, 10_000, 'the key grant at the target')
  for (const key of [owner.engine.keys.current, target.engine.keys.current]) secrets.push(toBase64Url(await key.exportRaw()))
  target.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'from the target' })
  await eventually(() => owner.engine.session.message('m1') !== undefined, 10_000, 'the target\'s write at the owner')
}, 60_000)

afterAll(async () => {
  target?.close()
  if (owner) closeDevice(owner)
  await relay.stop()
  relay.cleanup()
})

it('logs requests and upgrades with their URLs and headers, and none of the secrets they carried', () => {
  const output = relay.logs.join('\n')
  expect(secrets.length).toBeGreaterThanOrEqual(10)
  for (const secret of secrets) expect(output).not.toContain(secret)
  // Every capability starts with the bytes "KSC" 0x01, "S1NDAQ" in base64url.
  expect(output).not.toMatch(/S1NDAQ|cap=|kai=|Bearer [^<]/)
  // The rule was exercised: the lines that carried secrets were written.
  expect(relay.logs.filter((l) => l.includes('"msg":"upgrade"')).length).toBeGreaterThanOrEqual(3)
  expect(output).toMatch(/"url":"\/healthz","headers".*"msg":"request"/)
  expect(output).toMatch(/"authorization":"\[redacted\]"/)
  expect(output).toMatch(/"msg":"handoff resumed"/)
})

it('writes one JSON object a line, with time, level and msg', () => {
  for (const line of relay.logs.filter((l) => l.startsWith('{'))) {
    const entry = JSON.parse(line) as Record<string, unknown>
    expect(typeof entry.time).toBe('string')
    expect(['debug', 'info', 'warn', 'error']).toContain(entry.level)
    expect(typeof entry.msg).toBe('string')
  }
})
