import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { freePort } from '@kai-sync/process-harness'

const require = createRequire(import.meta.url)
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

export interface BenchServer {
  name: string
  url: string
  pid: number
  /** True if clients must present a kai-sync capability. */
  kai: boolean
  stop(): Promise<void>
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error('server exited during startup')
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.end()
        resolve(true)
      })
      s.on('error', () => resolve(false))
    })
    if (up) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`nothing listens on ${port}`)
}

function wrap(name: string, url: string, child: ChildProcess, kai: boolean, cleanup = () => {}): BenchServer {
  return {
    name,
    url,
    pid: child.pid!,
    kai,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r))
        child.kill('SIGTERM')
        await exited
      }
      cleanup()
    },
  }
}

/**
 * The kai-sync relay in its own process, LevelDB in a temp dir; limits
 * raised so they are not what is measured. `metrics: false` starts it with
 * `--metrics off`, to weigh what its metrics cost.
 */
export async function startKaiRelay(options: { verify: boolean; metrics?: boolean; checkout?: string; tsx?: boolean }): Promise<BenchServer> {
  const port = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), 'kai-bench-'))
  // BENCH_NODE_ARGS, e.g. --cpu-prof, to profile the relay under load.
  const extra = process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : []
  // `checkout`: another checkout's relay (installed there), to weigh what lies between two commits.
  // The relay as it ships (bin/kai-relay.mjs); `tsx` (or BENCH_RELAY_TSX=1) runs its sources through tsx's loader instead, as the tests do.
  const checkout = options.checkout ?? root
  const entry = (options.tsx ?? process.env.BENCH_RELAY_TSX === '1') ? ['--import', pathToFileURL(require.resolve('tsx')).href, join(checkout, 'apps', 'relay', 'src', 'cli.ts')] : [join(checkout, 'apps', 'relay', 'bin', 'kai-relay.mjs')]
  const args = [...extra, ...entry]
  args.push('--port', String(port), '--data-dir', dataDir, '--log-level', 'warn', '--max-messages-per-second', '1000000', '--message-burst', '1000000', '--max-rooms-per-client', '100000', ...(process.env.BENCH_RELAY_ARGS ? process.env.BENCH_RELAY_ARGS.split(' ') : []))
  if (!options.verify) args.push('--unsafe-skip-signatures')
  const metrics = options.metrics ?? true
  if (!metrics) args.push('--metrics', 'off')
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] })
  await waitForPort(port, child)
  const name = (options.verify ? 'kai-relay' : 'kai-relay (no signature checks)') + (metrics ? '' : ' (metrics off)') + (options.checkout ? ` (${options.checkout})` : '')
  return wrap(name, `ws://127.0.0.1:${port}`, child, true, () => rmSync(dataDir, { recursive: true, force: true }))
}

/** The stock @y/websocket-server 0.1.1 (0.1.5 silently fails with yjs 13), in memory as it ships. */
/**
 * The stock relay; with `persistence`, its own LevelDB persistence
 * (YPERSISTENCE, through y-leveldb) in a fresh directory: the stock answer
 * to storing what it relays. (It writes after relaying, in the background;
 * kai-relay stores before it relays.)
 */
export async function startStockRelay(options: { persistence?: boolean } = {}): Promise<BenchServer> {
  const port = await freePort()
  const pkg = dirname(require.resolve('@y/websocket-server/package.json'))
  const dir = options.persistence ? mkdtempSync(join(tmpdir(), 'bench-stock-leveldb-')) : null
  const env = { ...process.env, HOST: '127.0.0.1', PORT: String(port), ...(dir ? { YPERSISTENCE: dir } : {}) }
  const child = spawn(process.execPath, [join(pkg, 'src', 'server.js')], { stdio: ['ignore', 'ignore', 'inherit'], env })
  await waitForPort(port, child)
  const name = dir ? '@y/websocket-server 0.1.1 + y-leveldb' : '@y/websocket-server 0.1.1'
  return wrap(name, `ws://127.0.0.1:${port}`, child, false, () => {
    if (dir) rmSync(dir, { recursive: true, force: true })
  })
}

/** CPU seconds (user + system) in a /proc stat line. */
export function statCpuSeconds(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** Server CPU seconds (user + system), those of its main thread alone, and RSS in MB, from /proc. */
export function processUsage(pid: number): { cpuSeconds: number; mainThreadCpuSeconds: number; rssMb: number } {
  const cpuSeconds = statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  // The main thread's task id is the process id; worker threads have their own.
  const mainThreadCpuSeconds = statCpuSeconds(readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8'))
  const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return { cpuSeconds, mainThreadCpuSeconds, rssMb: Number(rss?.[1] ?? 0) / 1024 }
}
