import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

// A local stand-in for a model behind an OpenAI-compatible endpoint: it
// speaks the chat-completions streaming wire format (server-sent `data:`
// lines of chunks, then `data: [DONE]`), so tests run the real client
// library against it. What it answers is set per request; every request
// body is kept, with when the client closed the connection.

/** How the server answers one request. */
export interface ModelBehavior {
  /** The reply, in chunks (default: "Hello from the model."). */
  tokens?: string[]
  /** Wait this long before each chunk (default 5 ms). */
  delayMs?: number
  /** Instead of `delayMs`: send chunk k at k × this many ms after the reply starts, so a rate (50 tokens/s at 20) holds even when timers run late. */
  everyMs?: number
  /** Destroy the connection after this many chunks, without [DONE]. */
  cutAfter?: number
  /** Answer with this HTTP error status instead (401, 429, 500…). */
  status?: number
  /** Usage to send in a final chunk, as with stream_options.include_usage. */
  usage?: { prompt_tokens: number; completion_tokens: number }
}

export interface ModelRequest {
  body: any
  headers: IncomingMessage['headers']
  receivedAt: number
  /** When the client closed the connection before the server finished, if it did. */
  clientClosedAt?: number
  /** Chunks sent before the end. */
  sent: number
  /** When each chunk was written, on the `performance.timeOrigin + performance.now()` clock (ms). */
  sentAt: number[]
  finished: boolean
}

export interface TestModelServer {
  /** The base URL to give the client (`…/v1`). */
  baseUrl: string
  requests: ModelRequest[]
  /** Answers the next requests with these, in order; then `fallback`. */
  enqueue(...behaviors: ModelBehavior[]): void
  fallback: ModelBehavior
  /** Resolves with the n-th request (0-based) once it has arrived. */
  request(n: number, timeoutMs?: number): Promise<ModelRequest>
  close(): Promise<void>
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export async function startTestModelServer(fallback: ModelBehavior = {}): Promise<TestModelServer> {
  const queue: ModelBehavior[] = []
  const requests: ModelRequest[] = []
  const waiters: Array<() => void> = []
  const server = createServer((req, res) => {
    void handle(req, res).catch(() => res.destroy())
  })
  const api: TestModelServer = {
    baseUrl: '',
    requests,
    fallback,
    enqueue: (...b) => void queue.push(...b),
    async request(n, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs
      while (requests.length <= n) {
        if (Date.now() > deadline) throw new Error(`the model server got ${requests.length} requests, not ${n + 1}, in ${timeoutMs} ms`)
        await new Promise<void>((r) => {
          waiters.push(r)
          setTimeout(r, 100)
        })
      }
      return requests[n]!
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'not found' } }))
      return
    }
    const record: ModelRequest = { body: JSON.parse(Buffer.concat(chunks).toString('utf8')), headers: req.headers, receivedAt: Date.now(), sent: 0, sentAt: [], finished: false }
    requests.push(record)
    for (const w of waiters.splice(0)) w()
    res.on('close', () => {
      if (!record.finished) record.clientClosedAt ??= Date.now()
    })
    const b = queue.shift() ?? api.fallback
    if (b.status) {
      res.writeHead(b.status, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { message: `test server answers ${b.status}`, type: 'test', code: String(b.status) } }))
      record.finished = true
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
    const base = { id: 'chatcmpl-test', object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: record.body.model }
    const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`)
    send({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })
    const tokens = b.tokens ?? ['Hello', ' from', ' the', ' model.']
    const started = performance.now()
    for (const token of tokens) {
      if (b.cutAfter !== undefined && record.sent >= b.cutAfter) break
      await sleep(b.everyMs !== undefined ? started + (record.sent + 1) * b.everyMs - performance.now() : (b.delayMs ?? 5))
      if (res.destroyed) return
      send({ ...base, choices: [{ index: 0, delta: { content: token }, finish_reason: null }] })
      record.sentAt.push(performance.timeOrigin + performance.now())
      record.sent++
    }
    if (b.cutAfter !== undefined) {
      // Let what was sent reach the client, then drop the connection mid-reply.
      await sleep(b.delayMs ?? 5)
      res.destroy()
      return
    }
    send({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })
    if (b.usage) send({ ...base, choices: [], usage: { ...b.usage, total_tokens: b.usage.prompt_tokens + b.usage.completion_tokens } })
    record.finished = true
    res.end('data: [DONE]\n\n')
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  api.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`
  return api
}
