import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RUN_TS, spawnChild, waitForListening, type ChildHandle } from '@kai-sync/process-harness'

// The real relay, kai-relay, as a child process for the daemon's tests,
// started by the path of its entry point (apps import no other app).

const RELAY_CLI = join(import.meta.dirname, '..', '..', '..', 'relay', 'src', 'cli.ts')

export interface TestRelay {
  url: string
  port: number
  dataDir: string
  process: ChildHandle
  /** Every line the relay logged (JSON on stderr). */
  logs(): string[]
  /** SIGTERM: the relay stores every room and exits. */
  stop(): Promise<number | null>
  /** Starts again on the same port and data directory. */
  restart(): Promise<TestRelay>
  cleanup(): void
}

/** `logLevel`: tests read the debug lines (the default); a benchmark runs the relay as an operator would, at `info`. */
export async function spawnKaiRelay(options: { port?: number; dataDir?: string; logLevel?: 'debug' | 'info' } = {}): Promise<TestRelay> {
  if (!existsSync(RELAY_CLI)) throw new Error(`kai-relay is not at ${RELAY_CLI}`)
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'kai-daemon-relay-'))
  // In the child itself: a stop or kill -9 must reach the process holding the store.
  const args = [...RUN_TS, RELAY_CLI, '--host', '127.0.0.1', '--port', String(options.port ?? 0), '--data-dir', dataDir, '--log-level', options.logLevel ?? 'debug']
  const child = spawnChild(process.execPath, args)
  const { port } = await waitForListening(child, 30_000, 'the relay to listen')
  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    dataDir,
    process: child,
    logs: () => [...child.stdout, ...child.stderr],
    stop: () => child.stop(),
    restart: () => spawnKaiRelay({ ...options, port, dataDir }),
    cleanup() {
      void child.kill9()
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
