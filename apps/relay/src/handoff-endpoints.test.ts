import { afterEach, describe, expect, it } from 'vitest'
import { spawnRelay, type RelayProcess } from './testing/relay-process'

let relay: RelayProcess | undefined
afterEach(() => {
  relay?.cleanup()
  relay = undefined
})

describe('the handoff endpoints over HTTP', () => {
  // Regression: the outcome counter was never defined, so the first request
  // to either endpoint threw inside the handler and took the process down.
  it('answer a refused request with a JSON error, and the relay stays up', async () => {
    relay = await spawnRelay()
    const response = await fetch(`${relay.httpUrl}/session/AAAAAAAAAAAAAAAAAAAAAA/handoff`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"token":"x"}' })
    expect(response.status).toBeGreaterThanOrEqual(400)
    expect(((await response.json()) as { error: { code: string } }).error.code).toBeTruthy()
    expect((await fetch(`${relay.httpUrl}/healthz`)).status).toBe(200)
    expect(await (await fetch(`${relay.httpUrl}/metrics`)).text()).toContain('kai_relay_handoff_requests_total{action="handoff"')
  })

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
  })
})
