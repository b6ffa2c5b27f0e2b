import { spawn, type ChildProcess } from 'node:child_process'

// A child process whose output lines are kept and can be waited for: the
// relays, daemons and CLIs that tests, benchmarks and `pnpm start` run.

// Every child spawned here dies with this process, even when a test fails
// before its own cleanup runs. (A caller that wants a clean shutdown stops
// its child and awaits the exit first.)
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

export interface SpawnOptions {
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv
  cwd?: string
  /** Written to the child's stdin, which is then closed. */
  stdin?: string
  /** Also pass the child's output through to this process's stdout and stderr. */
  echo?: boolean
}

export function spawnChild(command: string, args: string[], options: SpawnOptions = {}): ChildHandle {
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
  const collect = (stream: NodeJS.ReadableStream, into: string[], echo: NodeJS.WritableStream | null) => {
    let buffer = ''
    stream.on('data', (chunk: Buffer) => {
      echo?.write(chunk)
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
  collect(child.stdout!, stdout, options.echo ? process.stdout : null)
  collect(child.stderr!, stderr, options.echo ? process.stderr : null)
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
