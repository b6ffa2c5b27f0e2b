import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnChild, waitForListening } from '@kai-sync/process-harness'

// A real kai-relay, run as its own process through its bin (as a person
// would), on loopback on a port the OS picks, with a fresh data directory.
const BIN = fileURLToPath(new URL('../../relay/bin/kai-relay.mjs', import.meta.url))

export interface SpawnedRelay {
  /** ws://127.0.0.1:PORT */
  url: string
  port: number
  readonly logs: string[]
  /** Stops the process (SIGTERM) and keeps its data directory. */
  stop(): Promise<void>
  /** Starts it again on the same port and data directory. */
  restart(): Promise<SpawnedRelay>
  /** Stops it and removes its data directory. */
  close(): Promise<void>
}

export async function startRelay(options: { port?: number; dataDir?: string } = {}): Promise<SpawnedRelay> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'kai-web-relay-'))
  const child = spawnChild(process.execPath, [BIN, '--host', '127.0.0.1', '--port', String(options.port ?? 0), '--data-dir', dataDir])
  const { port } = await waitForListening(child, 30_000, 'kai-relay to listen')
  const stop = async () => {
    await child.stop()
  }
  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    get logs() {
      return [...child.stderr, ...child.stdout]
    },
    stop,
    restart: () => startRelay({ port, dataDir }),
    async close() {
      await stop()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
