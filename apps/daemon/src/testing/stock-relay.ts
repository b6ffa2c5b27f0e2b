import { createRequire } from 'node:module'
import { freePort, spawnChild, type ChildHandle } from './processes'

// The stock y-websocket relay (@y/websocket-server) as a child process, for
// the tests that need a relay until kai-relay lands. It ignores capabilities
// and keeps rooms in memory only. Its handle has the shape of kai-relay's
// test helper (url, stop, restart, cleanup), so switching is one line.

const SERVER = createRequire(import.meta.url).resolve('@y/websocket-server/package.json').replace(/package\.json$/, 'src/server.js')

export interface TestRelay {
  url: string
  port: number
  process: ChildHandle
  stop(): Promise<number | null>
  /** Starts again on the same port (and, for a relay with a store, the same data). */
  restart(): Promise<TestRelay>
  cleanup(): void
}

export async function spawnStockRelay(options: { port?: number } = {}): Promise<TestRelay> {
  const port = options.port ?? (await freePort())
  const child = spawnChild(process.execPath, [SERVER], { env: { HOST: '127.0.0.1', PORT: String(port) } })
  await child.waitFor((line) => line.includes('running at'), 30_000, 'the stock relay to listen')
  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    process: child,
    stop: () => child.stop(),
    restart: () => spawnStockRelay({ port }),
    cleanup: () => void child.kill9(),
  }
}
