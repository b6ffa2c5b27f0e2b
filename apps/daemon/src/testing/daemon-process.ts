import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RUN_TS, spawnChild, waitForListening, type ChildHandle } from '@kai-sync/process-harness'

// `kai daemon` and the other `kai` commands as child processes: the CLI's
// entry point under tsx, as `pnpm kai …` runs it, in the child itself.

export const KAI_CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.ts')

export interface DaemonProcess {
  url: string
  dataDir: string
  process: ChildHandle
  /** The bearer token, read from the data directory as the CLI does. */
  token: string
  /** Every line the daemon wrote, stdout and stderr. */
  output(): string[]
  /** An authenticated request to the daemon's API. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>
  stop(): Promise<number | null>
  /** Starts a daemon again on the same data directory (and flags), with `env` added to its environment (none by default). */
  restart(env?: Record<string, string>): Promise<DaemonProcess>
  cleanup(): void
}

export interface DaemonProcessOptions {
  dataDir?: string
  relayUrl?: string
  label?: string
  args?: string[]
  /** Added to the daemon's environment (a `KAI_TEST_KILL_AT` point, OPENAI_BASE_URL for an agent). */
  env?: NodeJS.ProcessEnv | undefined
  /** `agent` runs `kai agent` (the daemon with the agent device). */
  command?: 'daemon' | 'agent'
  /** Tests read the debug lines (the default); a benchmark measures the daemon as a person runs it, at `info`. */
  logLevel?: 'debug' | 'info'
}

export async function spawnDaemon(options: DaemonProcessOptions = {}): Promise<DaemonProcess> {
  const dataDir = options.dataDir ?? join(mkdtempSync(join(tmpdir(), 'kai-daemon-')), 'data')
  const args = [...RUN_TS, KAI_CLI, '--data-dir', dataDir, options.command ?? 'daemon', '--port', '0', '--log-level', options.logLevel ?? 'debug', '--label', options.label ?? 'test daemon']
  if (options.relayUrl) args.push('--relay', options.relayUrl)
  args.push(...(options.args ?? []))
  const child = spawnChild(process.execPath, args, options.env ? { env: options.env } : {})
  const listening = await waitForListening(child, 60_000, 'the daemon to listen')
  const url = listening.url ?? `http://127.0.0.1:${listening.port}`
  const token = readFileSync(join(dataDir, 'token'), 'utf8').trim()
  const daemon: DaemonProcess = {
    url,
    dataDir,
    process: child,
    token,
    output: () => [...child.stdout, ...child.stderr],
    async api(method, path, body) {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      })
      return { status: response.status, json: await response.json().catch(() => null) }
    },
    stop: () => child.stop(),
    restart: (env) => spawnDaemon({ ...options, dataDir, env }),
    cleanup() {
      void child.kill9()
      if (!options.dataDir) rmSync(dirname(dataDir), { recursive: true, force: true })
    },
  }
  return daemon
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs one `kai` command to completion. */
export async function runCli(dataDir: string, args: string[], options: { stdin?: string } = {}): Promise<CliResult> {
  const child = spawnCli(dataDir, args, options)
  const code = await child.exited
  return { code, stdout: child.stdout.join('\n'), stderr: child.stderr.join('\n') }
}

/** Starts a `kai` command that keeps running (`tail`). */
export function spawnCli(dataDir: string, args: string[], options: { stdin?: string } = {}): ChildHandle {
  return spawnChild(process.execPath, [...RUN_TS, KAI_CLI, '--data-dir', dataDir, ...args], options)
}

/** Runs one `kai` command that must succeed; returns its stdout, or throws with its stderr. */
export async function kai(daemon: { dataDir: string }, ...args: string[]): Promise<string> {
  const result = await runCli(daemon.dataDir, args)
  if (result.code !== 0) throw new Error(`kai ${args.join(' ')} exited with ${result.code}:\n${result.stderr}`)
  return result.stdout
}
