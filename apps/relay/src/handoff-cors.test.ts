import { afterEach, describe, expect, it } from 'vitest'
import { spawnRelay, type RelayProcess } from './testing/relay-process'

let relay: RelayProcess | undefined
afterEach(async () => {
  await relay?.stop()
  relay?.cleanup()
  relay = undefined
})

describe('the handoff endpoints from a browser', () => {
  it('let the PWA and the extension call them from their own origins (CORS, no credentials)', async () => {
    relay = await spawnRelay()
    const preflight = await fetch(`${relay.httpUrl}/session/AAAAAAAAAAAAAAAAAAAAAA/resume`, {
      method: 'OPTIONS',
      headers: { origin: 'chrome-extension://abc', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    })
    expect(preflight.status).toBe(204)
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*')
    expect(preflight.headers.get('access-control-allow-headers')).toContain('content-type')
    expect(preflight.headers.get('access-control-allow-credentials')).toBeNull()
    // A refusal carries the header too, so the page can read its error code.
    const refused = await fetch(`${relay.httpUrl}/session/AAAAAAAAAAAAAAAAAAAAAA/resume`, { method: 'POST', headers: { origin: 'chrome-extension://abc', 'content-type': 'application/json' }, body: '{}' })
    expect(refused.status).toBe(400)
    expect(refused.headers.get('access-control-allow-origin')).toBe('*')
  })
})
