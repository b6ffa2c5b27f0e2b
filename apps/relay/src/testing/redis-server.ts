import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '@kai-sync/process-harness'

export interface RedisServer {
  url: string
  port: number
  /** SIGKILL: Redis and everything it held (no persistence) are gone. */
  kill(): Promise<void>
  /** SIGSTOP: Redis keeps its sockets open but answers nothing until `resume`. */
  pause(): void
  /** SIGCONT after `pause`: Redis serves what was sent to it meanwhile. */
  resume(): void
  /** Starts an empty Redis again on the same port (after kill). */
  restart(): Promise<void>
  stop(): Promise<void>
}

/** Starts a throwaway Redis (Debian's redis-server) on a free loopback port, without persistence. */
export async function startRedis(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'kai-redis-'))
  const port = await freePort()
  let child = await spawnRedis(port, dir)
  const kill = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return
    // A stopped process does not act on SIGTERM until it runs again.
    child.kill('SIGCONT')
    const exited = new Promise((r) => child.once('exit', r))
    child.kill(signal)
    await exited
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill: () => kill('SIGKILL'),
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    async restart() {
      await kill('SIGKILL')
      child = await spawnRedis(port, dir)
    },
    async stop() {
      await kill('SIGTERM')
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

async function spawnRedis(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' })
  const failed = new Promise<never>((_, reject) => {
    child.once('error', () => reject(new Error('redis-server is not installed: apt-get install redis-server (the relay tests start their own)')))
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)))
  })
  const deadline = Date.now() + 10_000
  for (;;) {
    const up = await Promise.race([
      failed,
      new Promise<boolean>((resolve) => {
        const s = connect(port, '127.0.0.1', () => {
          s.end()
          resolve(true)
        })
        s.on('error', () => resolve(false))
      }),
    ])
    if (up) break
    if (Date.now() > deadline) throw new Error(`redis-server did not start on ${port}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  failed.catch(() => {})
  return child
}
