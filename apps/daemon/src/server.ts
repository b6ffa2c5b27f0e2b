import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { z } from 'zod'
import { HTTP_STATUS, KaiError, parseInput, toKaiError } from '@kai-sync/model'
import { matchPath, type AnyRoute } from './route'
import { checkBearer } from './token'
import { NDJSON_TYPE, isNdjson, ndjsonLines } from './ndjson'
import type { Logger } from './log'

// The HTTP server: loopback only, JSON in and out. It finds the route,
// checks the bearer token, reads the body under the size limit, parses it
// with the route's schema, runs the handler, and checks the response with
// the route's schema. Anything thrown becomes `{ error: { code, message } }`
// with the code's status; nothing is applied unless everything checked out.

/** Bodies past this many bytes are refused with `too_large` (1 MiB unless configured). */
export const DEFAULT_BODY_LIMIT = 1024 * 1024
/** An oversized body is read (and dropped) up to this multiple of the limit, so the client hears the 413; then the connection is cut. */
const DRAIN_FACTOR = 16

export interface ApiServerOptions {
  routes: AnyRoute[]
  token: string
  log: Logger
  bodyLimit?: number
}

export interface ApiServer {
  server: Server
  port: number
  url: string
  close(): Promise<void>
}

export async function startApiServer(options: ApiServerOptions & { host: string; port: number }): Promise<ApiServer> {
  const server = createServer((req, res) => void handle(options, req, res))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    server,
    port,
    url: `http://${options.host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Event streams stay open forever otherwise.
        server.closeAllConnections()
      }),
  }
}

async function handle(options: ApiServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = Date.now()
  const url = new URL(req.url ?? '/', 'http://localhost')
  let route: AnyRoute | undefined
  let params: Record<string, string> | null = null
  try {
    const method = req.method ?? 'GET'
    for (const r of options.routes) {
      if (r.method !== method) continue
      params = matchPath(r.path, url.pathname)
      if (params) {
        route = r
        break
      }
    }
    if (!route || !params) {
      throw new KaiError('not_found', `no ${method} ${url.pathname.slice(0, 100)} here; GET /openapi.json lists the API`)
    }
    if (route.auth) checkBearer(req.headers.authorization, options.token)
    if (route.kind === 'sse') {
      route.open({ params, query: url.searchParams, body: undefined, json: undefined }, req, res)
      log(options.log, req, route.path, 200, started)
      return
    }
    const result = await runJsonRoute(route, { params, query: url.searchParams }, req, options.bodyLimit ?? DEFAULT_BODY_LIMIT)
    const checked = z.safeParse(route.response, result)
    if (!checked.success) {
      throw new KaiError('internal', `the response of ${route.operationId} does not match its schema: ${checked.error.issues[0]?.message}`)
    }
    const status = route.status ?? 200
    send(res, status, checked.data)
    log(options.log, req, route.path, status, started)
  } catch (e) {
    const error = toKaiError(e)
    const status = HTTP_STATUS[error.code]
    if (error.code === 'internal') options.log.error('request failed', { route: route?.path, error: error.message })
    // An internal failure's detail goes to the log, not to the client.
    const message = error.code === 'internal' ? 'internal: an unexpected failure; it has been logged' : error.message
    if (!res.headersSent) send(res, status, { error: { code: error.code, message } })
    else res.end()
    log(options.log, req, route?.path ?? '(no route)', status, started, error.code)
  }
}

/** Reads the body (JSON, or NDJSON line by line where the route takes it) and runs the handler. */
async function runJsonRoute(route: Extract<AnyRoute, { kind: 'json' }>, ctx: { params: Record<string, string>; query: URLSearchParams }, req: IncomingMessage, limit: number): Promise<unknown> {
  if (route.ndjson && isNdjson(req)) return route.ndjson.handle({ ...ctx, body: undefined, json: undefined }, ndjsonLines(req, route.ndjson.line, limit))
  let json: unknown
  let body: unknown
  if (route.body) {
    json = await readJson(req, limit, route.ndjson !== undefined)
    body = parseInput(route.body, json, 'request body')
  }
  return route.handle({ ...ctx, body: body as never, json })
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}

/** Reads a JSON body, refusing a wrong content type (`invalid_input`), an oversized body (`too_large`) and bad JSON (`malformed`). */
async function readJson(req: IncomingMessage, limit: number, takesNdjson: boolean): Promise<unknown> {
  const type = req.headers['content-type'] ?? ''
  if (!/^application\/json\b/i.test(type)) {
    req.resume()
    throw new KaiError('invalid_input', 'send the body as JSON with content-type: application/json' + (takesNdjson ? ` (or as NDJSON with content-type: ${NDJSON_TYPE})` : ''))
  }
  const declared = Number(req.headers['content-length'] ?? NaN)
  const chunks: Buffer[] = []
  let size = 0
  await new Promise<void>((resolve, reject) => {
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size <= limit) chunks.push(chunk)
      else if (size > limit * DRAIN_FACTOR) req.destroy()
    })
    req.on('end', () => resolve())
    req.on('error', reject)
    req.on('close', () => resolve())
  })
  if (size > limit || declared > limit) throw new KaiError('too_large', `the body is over the ${limit}-byte limit`)
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new KaiError('malformed', 'the body is not valid JSON')
  }
}

// The request line carries its URL and headers as sent: the logger's rules
// (see @kai-sync/log) censor the bearer token and strip the query.
function log(logger: Logger, req: IncomingMessage, path: string, status: number, started: number, code?: string): void {
  const fields = { method: req.method, route: path, url: req.url, headers: req.headers, status, ms: Date.now() - started, code }
  if (status >= 500) logger.error('request', fields)
  else if (status >= 400) logger.info('request', fields)
  else logger.debug('request', fields)
}
