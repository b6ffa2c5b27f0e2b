import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli.ts')
// tsx as a loader inside the relay's own process (not the tsx CLI, which
// runs a second process): kill -9 must reach the process holding the store.
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href

export interface RelayProcess {
  url: string
  httpUrl: string
  port: number
  dataDir: string
  child: ChildProcess
  /** Every line the relay logged. */
  logs: string[]
  /** SIGTERM, then waits for the exit code. */
  stop(): Promise<number | null>
  /** SIGKILL: no chance to flush anything. */
  kill9(): Promise<void>
  /** Starts again on the same port and data directory. */
  restart(): Promise<RelayProcess>
  cleanup(): void
}

// Every relay a test spawned dies with the test process, even when a test
// fails before its own cleanup runs.
const children = new Set<ChildProcess>()
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
})

/** Spawns `kai-relay` as a child process on a free port, in a fresh data directory unless given one. */
export async function spawnRelay(args: string[] = [], options: { dataDir?: string; port?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RelayProcess> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'kai-relay-'))
  const child = spawn(process.execPath, ['--import', TSX_LOADER, CLI, '--port', String(options.port ?? 0), '--data-dir', dataDir, '--log-level', 'debug', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  const logs: string[] = []
  let buffer = ''
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`relay did not start:\n${logs.join('\n')}`))
    }, 30_000)
    child.stderr!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      let nl
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        logs.push(line)
        try {
          const entry = JSON.parse(line) as { msg?: string; port?: number }
          if (entry.msg === 'listening' && entry.port) {
            clearTimeout(timer)
            resolve(entry.port)
          }
        } catch {
          // not JSON: kept in logs
        }
      }
    })
    child.stdout!.on('data', (chunk: Buffer) => logs.push(chunk.toString()))
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`relay exited with ${code}:\n${logs.join('\n')}`))
    })
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const relay: RelayProcess = {
    url: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    port,
    dataDir,
    child,
    logs,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      child.kill('SIGTERM')
      return exited
    },
    async kill9() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGKILL')
      await exited
    },
    restart: () => spawnRelay(args, { ...options, dataDir, port }),
    cleanup() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true })
    },
  }
  return relay
}
