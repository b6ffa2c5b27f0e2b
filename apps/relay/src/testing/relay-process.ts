import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RUN_TS, spawnChild, waitForListening } from '@kai-sync/process-harness'

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli.ts')
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'kai-relay.mjs')

export interface RelayProcess {
  url: string
  httpUrl: string
  port: number
  dataDir: string
  child: ChildProcess
  /** Every line the relay logged. */
  readonly logs: string[]
  /** Resolves with the first logged line that matches, as soon as it is read. */
  waitFor(match: (line: string) => boolean, timeoutMs?: number, what?: string): Promise<string>
  /** SIGTERM, then waits for the exit code. */
  stop(): Promise<number | null>
  /** SIGKILL: no chance to flush anything. */
  kill9(): Promise<void>
  /** Starts again on the same port and data directory. */
  restart(): Promise<RelayProcess>
  cleanup(): void
}

/** Spawns `kai-relay` as a child process on a free port, in a fresh data directory unless given one; its sources through tsx unless `shipped`. */
export async function spawnRelay(args: string[] = [], options: { dataDir?: string; port?: number; env?: NodeJS.ProcessEnv; shipped?: boolean } = {}): Promise<RelayProcess> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'kai-relay-'))
  // tsx as a loader in the relay's own process: kill -9 must reach the process
  // holding the store. `shipped`: bin/kai-relay.mjs instead, the bundle users run.
  const entry = options.shipped ? [BIN] : [...RUN_TS, CLI]
  const handle = spawnChild(process.execPath, [...entry, '--port', String(options.port ?? 0), '--data-dir', dataDir, '--log-level', 'debug', ...args], {
    ...(options.env ? { env: options.env } : {}),
  })
  let port: number
  try {
    port = (await waitForListening(handle, 30_000, 'the relay to listen')).port
  } catch (e) {
    await handle.kill9()
    throw e
  }
  return {
    url: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    port,
    dataDir,
    child: handle.child,
    get logs() {
      return [...handle.stderr, ...handle.stdout]
    },
    waitFor: (match, timeoutMs, what) => handle.waitFor(match, timeoutMs, what),
    stop: () => handle.stop(),
    kill9: () => handle.kill9(),
    restart: () => spawnRelay(args, { ...options, dataDir, port }),
    cleanup() {
      void handle.kill9()
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
