import type { IncomingMessage, ServerResponse } from 'node:http'
import { HTTP_STATUS, KaiError, parseInput, toKaiError } from '@kai-sync/model'
import { HandoffRegistry, RegisterHandoffBodySchema, ResumeBodySchema, type HandoffStore } from '@kai-sync/handoff/registry'
import type { SignatureVerifier } from '@kai-sync/crypto'
import type { Logger } from './log'
import type { Metrics } from './metrics'

// POST /session/:id/handoff and POST /session/:id/resume: the relay files a
// handoff token its source registers and burns it when the target resumes.
// The relay sees the signed token (public: who hands what off until when)
// and the volatile state sealed under the session key; the key material the
// target needs travels only in the link's fragment, which never reaches it.

const PATH = /^\/session\/([A-Za-z0-9_-]{1,128})\/(handoff|resume)$/
/** A register body carries at most 256 KiB of sealed volatile state, as base64url. */
const MAX_BODY_BYTES = 384 * 1024
/**
 * Browsers call these from the PWA's and the extension's own origins. The
 * endpoints take no cookies or credentials (a signed token is the
 * authority), so any origin may call them.
 */
const CORS = { 'access-control-allow-origin': '*', 'access-control-allow-methods': 'POST', 'access-control-allow-headers': 'content-type', 'access-control-max-age': '600' }

export interface HandoffEndpointOptions {
  verifier: SignatureVerifier
  /** Whether `issuer` is an owner or writer of the room (the roster as the relay holds it). */
  mayHandOff(sessionId: string, issuer: Uint8Array): Promise<boolean>
  store?: HandoffStore | undefined
  /** Requests per address per minute across both endpoints (default 60). */
  perMinute?: number
  log: Logger
  metrics: Metrics
}

export class HandoffEndpoints {
  readonly registry: HandoffRegistry
  private readonly limiter: AddressRateLimiter
  private readonly sweeper: ReturnType<typeof setInterval>

  constructor(private readonly options: HandoffEndpointOptions) {
    this.registry = new HandoffRegistry({ verifier: options.verifier, mayHandOff: options.mayHandOff, store: options.store })
    this.limiter = new AddressRateLimiter(options.perMinute ?? 60)
    this.sweeper = setInterval(() => void this.registry.sweep().catch(() => {}), 60_000)
    this.sweeper.unref()
  }

  /** True if the request was one of the two endpoints (and has been answered). */
  handles(req: IncomingMessage): boolean {
    return PATH.test((req.url ?? '').split('?')[0]!)
  }

  async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const [, sessionId, action] = PATH.exec((req.url ?? '').split('?')[0]!)!
    if (req.method === 'OPTIONS') {
      res.writeHead(204, CORS).end()
      return
    }
    try {
      if (req.method !== 'POST') throw new KaiError('not_found', `use POST /session/:id/${action}`)
      if (!this.limiter.take(req.socket.remoteAddress ?? 'unknown')) throw new KaiError('rate_limited', 'too many handoff requests from this address; wait a minute')
      const body = await readJson(req)
      const result =
        action === 'handoff'
          ? await this.registry.register(sessionId!, parseInput(RegisterHandoffBodySchema, body, 'body'))
          : await this.registry.resume(sessionId!, parseInput(ResumeBodySchema, body, 'body'))
      this.options.metrics.inc('kai_relay_handoff_requests_total', { action: action!, code: 'ok' })
      this.options.log.info(action === 'handoff' ? 'handoff registered' : 'handoff resumed', { room: sessionId })
      res.writeHead(200, { ...CORS, 'content-type': 'application/json' }).end(JSON.stringify(result))
    } catch (e) {
      const error = toKaiError(e)
      this.options.metrics.inc('kai_relay_handoff_requests_total', { action: action!, code: error.code })
      // The token is a bearer credential until burned: never logged, only the outcome.
      this.options.log.info('handoff request refused', { room: sessionId, action, code: error.code })
      res.writeHead(HTTP_STATUS[error.code], { ...CORS, 'content-type': 'application/json' }).end(JSON.stringify({ error: error.toJSON() }))
    }
  }

  close(): void {
    clearInterval(this.sweeper)
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > MAX_BODY_BYTES) throw new KaiError('too_large', `the body is over ${MAX_BODY_BYTES} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY_BYTES) throw new KaiError('too_large', `the body is over ${MAX_BODY_BYTES} bytes`)
    chunks.push(chunk as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown
  } catch {
    throw new KaiError('invalid_input', 'the body is not JSON')
  }
}

/** A fixed one-minute window per address: enough to stop token guessing and floods. */
class AddressRateLimiter {
  private window = 0
  private counts = new Map<string, number>()

  constructor(private readonly perMinute: number) {}

  take(address: string): boolean {
    const window = Math.floor(Date.now() / 60_000)
    if (window !== this.window) {
      this.window = window
      this.counts = new Map()
    }
    const n = (this.counts.get(address) ?? 0) + 1
    this.counts.set(address, n)
    return n <= this.perMinute
  }
}
