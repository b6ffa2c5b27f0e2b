import { createRequire } from 'node:module'
import { freePort, spawnChild, type ChildHandle } from '@kai-sync/process-harness'

// The stock y-websocket server (@y/websocket-server) as a child process, for
// the test that the daemon also syncs through any y-websocket relay. It
// ignores capabilities, checks nothing, sends no acks and keeps rooms in
// memory only.

const SERVER = createRequire(import.meta.url).resolve('@y/websocket-server/package.json').replace(/package\.json$/, 'src/server.js')

export interface StockRelay {
  url: string
  process: ChildHandle
  cleanup(): void
}

export async function spawnStockRelay(): Promise<StockRelay> {
  const port = await freePort()
  const child = spawnChild(process.execPath, [SERVER], { env: { HOST: '127.0.0.1', PORT: String(port) } })
  await child.waitFor((line) => line.includes('running at'), 30_000, 'the stock relay to listen')
  return { url: `ws://127.0.0.1:${port}`, process: child, cleanup: () => void child.kill9() }
}
