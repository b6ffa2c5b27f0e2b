import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

// A real kai-relay, run as its own process through its bin (as a person
// would), on loopback on a port the OS picks, with a fresh data directory.
const BIN = fileURLToPath(new URL('../../relay/bin/kai-relay.mjs', import.meta.url))

export interface SpawnedRelay {
  /** ws://127.0.0.1:PORT */
  url: string
  port: number
  logs: string[]
  /** Stops the process (SIGTERM) and keeps its data directory. */
  stop(): Promise<void>
  /** Starts it again on the same port and data directory. */
  restart(): Promise<SpawnedRelay>
  /** Stops it and removes its data directory. */
  close(): Promise<void>
}

const running = new Set<ChildProcess>()
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL')
})

export async function startRelay(options: { port?: number; dataDir?: string } = {}): Promise<SpawnedRelay> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'kai-web-relay-'))
  const child = spawn(process.execPath, [BIN, '--host', '127.0.0.1', '--port', String(options.port ?? 0), '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  const logs: string[] = []
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const port = await new Promise<number>((resolve, reject) => {
    let buffer = ''
    const timer = setTimeout(() => reject(new Error(`kai-relay did not start:\n${logs.join('\n')}`)), 30_000)
    child.stderr!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
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
          // not a log line
        }
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`kai-relay exited with ${code}:\n${logs.join('\n')}`))
    })
  })
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
    running.delete(child)
  }
  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    logs,
    stop,
    restart: () => startRelay({ port, dataDir }),
    async close() {
      await stop()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
