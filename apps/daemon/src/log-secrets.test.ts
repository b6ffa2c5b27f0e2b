import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { parseResumeLink } from '@kai-sync/handoff'
import { toBase64Url } from '@kai-sync/crypto'
import { eventually, kai, spawnDaemon, spawnKaiRelay, type DaemonProcess, type TestRelay } from './testing'

// "No secret is ever logged", as a rule of the logger rather than each
// caller's care: two daemons at debug level log every API request with its
// URL and headers (the bearer token among them) and each handoff with its
// link, and real traffic (a handoff through a real kai-relay, its token
// burned, the keys granted to the target, writes both ways) leaves no
// bearer token, link fragment, invite secret, handoff token, capability or
// key in either daemon's output. Without the redaction rules in
// @kai-sync/log this test fails (the bearer tokens and the link show up).

const cleanups: Array<() => void> = []
afterAll(() => {
  for (const c of cleanups.reverse()) c()
})

function keysIn(daemon: DaemonProcess): string[] {
  const out: string[] = []
  for (const file of ['device.json', 'box.json']) {
    const key = JSON.parse(readFileSync(join(daemon.dataDir, file), 'utf8')) as { pkcs8: string }
    out.push(key.pkcs8, key.pkcs8.slice(-43))
  }
  for (const file of readdirSync(join(daemon.dataDir, 'keys'))) {
    const keys = JSON.parse(readFileSync(join(daemon.dataDir, 'keys', file), 'utf8')) as { epochs: Array<{ key: string }> }
    out.push(...keys.epochs.map((e) => e.key))
  }
  return out
}

it('a handoff between two daemons leaves no secret in their logs, though requests and links are logged', async () => {
  const relay: TestRelay = await spawnKaiRelay()
  cleanups.push(() => relay.cleanup())
  const [a, b] = await Promise.all([spawnDaemon({ relayUrl: relay.url, label: 'source' }), spawnDaemon({ relayUrl: relay.url, label: 'target' })])
  cleanups.push(() => a.cleanup(), () => b.cleanup())
  const sessionId = (await kai(a, 'create')).trim()
  await kai(a, 'append', sessionId, 'before the handoff')

  const started = await a.api('POST', `/session/${sessionId}/handoff`, { session_id: sessionId, source_mode: 'desktop', target_mode: 'headless', transfer_type: 'mirror' })
  expect(started.status, JSON.stringify(started.json)).toBe(200)
  const link = started.json.resume_url as string
  const resumed = await b.api('POST', `/session/${sessionId}/resume`, { resume_url: link, label: 'target' })
  expect(resumed.status, JSON.stringify(resumed.json)).toBe(201)
  // The keys were granted to the target: it reads what the source writes next.
  await kai(a, 'append', sessionId, 'after the handoff')
  await eventually(async () => (await b.api('GET', `/session/${sessionId}`)).json, (r) => r.messages?.some((m: { content: string }) => m.content === 'after the handoff'), 'the target to read the source\'s next write')
  // A token in a query string, where a careless client may put it.
  await fetch(`${a.url}/sessions?token=${a.token}`)

  const secrets = [a.token, b.token, link, link.split('#')[1]!, started.json.handoff_token as string, toBase64Url(parseResumeLink(link).inviteSecret), ...keysIn(a), ...keysIn(b)]
  expect(secrets.length).toBeGreaterThanOrEqual(12)
  const output = [...a.output(), ...b.output()].join('\n')
  for (const secret of secrets) expect(output).not.toContain(secret)
  // Every capability starts with the bytes "KSC" 0x01, "S1NDAQ" in base64url.
  expect(output).not.toMatch(/S1NDAQ|cap=|kai=|Bearer [^<]/)
  // The rule was exercised: the lines that carried secrets were written.
  expect(output).toMatch(/"authorization":"\[redacted\]"/)
  expect(output).toMatch(/"url":"\/sessions","headers"/)
  expect(output).toMatch(/"link":"[^"#]+".*"msg":"handoff initiated"/)
  expect(output).toMatch(/"link":"[^"#]+".*"msg":"handoff accepted"/)
}, 120_000)
