import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { WebSocketServer } from 'ws'
import { setupWSConnection } from '@y/websocket-server/utils'
import { defaultVerifier } from '@kai-sync/crypto'
import { HTTP_STATUS, parseInput, toKaiError } from '@kai-sync/model'
import { HandoffRegistry, RegisterHandoffBodySchema, ResumeBodySchema } from '@kai-sync/handoff'

// A stand-in for kai-relay in tests, until it lands: the stock y-websocket
// server's rooms plus the relay's two handoff endpoints, served by the real
// HandoffRegistry. Unlike kai-relay it checks no capability and no roster
// (anyone may hand off), keeps rooms in memory, and has no rate limits.

const registry = new HandoffRegistry({ verifier: await defaultVerifier(), mayHandOff: () => true })

async function endpoint(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const match = /^\/session\/([^/]+)\/(handoff|resume)$/.exec(req.url ?? '')
  try {
    if (req.method !== 'POST' || !match) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('okay')
      return
    }
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown
    const sessionId = decodeURIComponent(match[1]!)
    const result =
      match[2] === 'handoff'
        ? await registry.register(sessionId, parseInput(RegisterHandoffBodySchema, body, 'body'))
        : await registry.resume(sessionId, parseInput(ResumeBodySchema, body, 'body'))
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result))
  } catch (e) {
    const error = toKaiError(e)
    res.writeHead(HTTP_STATUS[error.code], { 'content-type': 'application/json' }).end(JSON.stringify({ error: error.toJSON() }))
  }
}

const wss = new WebSocketServer({ noServer: true })
const server = createServer((req, res) => void endpoint(req, res))
server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => setupWSConnection(ws, req)))
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log(`running at 127.0.0.1 on port ${process.env.PORT}`))
