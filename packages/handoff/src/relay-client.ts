import { KaiError } from '@kai-sync/model'
import { ResumeResponseSchema, type RegisterHandoffBody, type ResumeBody, type ResumeResponse } from './protocol'
// A type only: the registry's code is not part of the client entry.
import type { HandoffRegistry } from './registry'

/** The relay's two handoff endpoints, as a client sees them. */
export interface HandoffRelay {
  register(sessionId: string, body: RegisterHandoffBody): Promise<{ expires_at: number }>
  resume(sessionId: string, body: ResumeBody): Promise<ResumeResponse>
}

/** The relay's HTTP base for a ws(s):// or http(s):// relay address. */
export function relayHttpBase(relayUrl: string): string {
  const url = new URL(relayUrl)
  url.protocol = url.protocol === 'wss:' ? 'https:' : url.protocol === 'ws:' ? 'http:' : url.protocol
  url.pathname = url.pathname.replace(/\/+$/, '')
  url.search = ''
  url.hash = ''
  return url.toString().replace(/\/$/, '')
}

/** POST /session/:id/handoff and /session/:id/resume on a relay. */
export function httpHandoffRelay(relayUrl: string, fetchImpl: typeof fetch = globalThis.fetch): HandoffRelay {
  const base = relayHttpBase(relayUrl)
  const post = async (path: string, body: unknown): Promise<unknown> => {
    let response: Response
    try {
      response = await fetchImpl(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    } catch (cause) {
      throw new KaiError('unavailable', `the relay at ${base} cannot be reached`, { cause })
    }
    const json = (await response.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null
    if (!response.ok) {
      throw KaiError.fromJSON(json?.error, `the relay answered ${response.status}`)
    }
    return json
  }
  return {
    async register(sessionId, body) {
      return (await post(`/session/${encodeURIComponent(sessionId)}/handoff`, body)) as { expires_at: number }
    },
    async resume(sessionId, body) {
      return ResumeResponseSchema.parse(await post(`/session/${encodeURIComponent(sessionId)}/resume`, body))
    },
  }
}

/** The same two calls against a registry in this process (a relay embedding it, or a test). */
export function localHandoffRelay(registry: HandoffRegistry): HandoffRelay {
  return {
    register: (sessionId, body) => registry.register(sessionId, body),
    resume: (sessionId, body) => registry.resume(sessionId, body),
  }
}
