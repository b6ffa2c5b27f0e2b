import { createRequire } from 'node:module'
import { join } from 'node:path'
import { TSX, freePort, spawnChild, type ChildHandle } from './processes'

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

const STAND_IN = join(import.meta.dirname, 'stand-in-relay-main.ts')

export async function spawnStockRelay(options: { port?: number } = {}): Promise<TestRelay> {
  return spawnRelayProcess([SERVER], options.port, spawnStockRelay)
}

/**
 * The stock relay plus the relay's handoff endpoints (POST /session/:id/handoff
 * and /resume, served by the real HandoffRegistry), for the handoff tests
 * until kai-relay lands. It checks no capability and no roster.
 */
export async function spawnStandInRelay(options: { port?: number } = {}): Promise<TestRelay> {
  return spawnRelayProcess([TSX, STAND_IN], options.port, spawnStandInRelay)
}

async function spawnRelayProcess(args: string[], port: number | undefined, again: (o: { port: number }) => Promise<TestRelay>): Promise<TestRelay> {
  const at = port ?? (await freePort())
  const child = spawnChild(process.execPath, args, { env: { HOST: '127.0.0.1', PORT: String(at) } })
  await child.waitFor((line) => line.includes('running at'), 30_000, 'the relay to listen')
  return {
    url: `ws://127.0.0.1:${at}`,
    port: at,
    process: child,
    stop: () => child.stop(),
    restart: () => again({ port: at }),
    cleanup: () => void child.kill9(),
  }
}
