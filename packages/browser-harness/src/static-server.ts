import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { readFile, stat } from 'node:fs/promises'
import { extname, join, normalize, sep } from 'node:path'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
}

export interface StaticServerOptions {
  /** Serves files from this directory (index.html for `/`). */
  dir?: string
  /** In-memory files by path (`/test.js`), served before the directory. */
  files?: Record<string, string | Uint8Array>
  /** Extra headers on every response (COOP/COEP for precise timers, say). */
  headers?: Record<string, string>
  port?: number
}

export interface StaticServer {
  /** `http://127.0.0.1:PORT`: a secure context, so WebCrypto and service workers work. */
  readonly url: string
  close(): Promise<void>
}

/** A static file server on loopback, for pages under test and for `pnpm serve:web`. */
export async function serveStatic(options: StaticServerOptions): Promise<StaticServer> {
  // node:http ignores the handler's promise, so a rejection (a malformed
  // %-escape makes decodeURIComponent throw) is answered here, not left unhandled.
  const server: Server = createServer((req, res) => void handle(req, res).catch(() => {
    if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' })
    res.end('bad request')
  }))
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    const headers = { 'cache-control': 'no-cache', ...options.headers }
    const memory = options.files?.[path]
    if (memory !== undefined) {
      res.writeHead(200, { ...headers, 'content-type': TYPES[extname(path)] ?? 'text/html; charset=utf-8' })
      res.end(memory)
      return
    }
    if (options.dir) {
      const file = normalize(join(options.dir, path.endsWith('/') ? `${path}index.html` : path))
      if (file.startsWith(normalize(options.dir) + sep)) {
        try {
          if ((await stat(file)).isFile()) {
            res.writeHead(200, { ...headers, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' })
            res.end(await readFile(file))
            return
          }
        } catch {
          // falls through to 404
        }
      }
    }
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end('not found')
  }
  // A port in use must reject, so a caller can fall back to another one.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
