import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

// Child processes for the daemon's tests: a free port, and a process whose
// output lines are kept and can be waited for.

export const TSX = createRequire(import.meta.url).resolve('tsx/cli')
/**
 * Node arguments that run a .ts file in this very process (tsx as a loader).
 * The tsx CLI would run it in a grandchild, which a kill of the child
 * leaves running: every test's daemons outlived it.
 */
export const RUN_TS = ['--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href]

/** A port nobody listens on right now (bound and released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

// Every child a test spawned dies with the test process, even when a test
// fails before its own cleanup runs.
const children = new Set<ChildProcess>()
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
})

export interface ChildHandle {
  child: ChildProcess
  stdout: string[]
  stderr: string[]
  /** Resolves with the first output line (of either stream) that matches. */
  waitFor(match: (line: string) => boolean, timeoutMs?: number, what?: string): Promise<string>
  exited: Promise<number | null>
  /** SIGTERM, then waits for the exit code. */
  stop(): Promise<number | null>
  kill9(): Promise<void>
}

export function spawnChild(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; stdin?: string } = {}): ChildHandle {
  const child = spawn(command, args, {
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
    cwd: options.cwd,
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  if (options.stdin !== undefined) child.stdin!.end(options.stdin)
  const stdout: string[] = []
  const stderr: string[] = []
  const waiters: Array<{ match: (line: string) => boolean; resolve: (line: string) => void }> = []
  const collect = (stream: NodeJS.ReadableStream, into: string[]) => {
    let buffer = ''
    stream.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      let nl
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        into.push(line)
        for (const w of [...waiters]) {
          if (w.match(line)) {
            waiters.splice(waiters.indexOf(w), 1)
            w.resolve(line)
          }
        }
      }
    })
    stream.on('end', () => {
      if (buffer) into.push(buffer)
      buffer = ''
    })
  }
  collect(child.stdout!, stdout)
  collect(child.stderr!, stderr)
  // 'close' rather than 'exit': by then every line of output has been read.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
  const running = () => child.exitCode === null && child.signalCode === null
  return {
    child,
    stdout,
    stderr,
    exited,
    waitFor(match, timeoutMs = 30_000, what = 'a matching line') {
      const seen = [...stdout, ...stderr].find(match)
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const waiter = { match, resolve: (line: string) => (clearTimeout(timer), resolve(line)) }
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1)
          reject(new Error(`timed out waiting for ${what}\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr.join('\n')}`))
        }, timeoutMs)
        waiters.push(waiter)
        void exited.then((code) => {
          if (!waiters.includes(waiter)) return
          clearTimeout(timer)
          reject(new Error(`exited with ${code} before ${what}\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr.join('\n')}`))
        })
      })
    },
    async stop() {
      if (running()) child.kill('SIGTERM')
      return exited
    },
    async kill9() {
      if (running()) child.kill('SIGKILL')
      await exited
    },
  }
}
