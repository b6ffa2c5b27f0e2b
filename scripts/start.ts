// `pnpm start`: the relay with its demo session (apps/relay/src/demo.ts, in
// its own process), and the PWA served beside it, configured to use that
// relay. Builds the web app first when its sources are newer than dist/.
// Flags go to the relay (`pnpm start --port 4000`); KAI_WEB_PORT picks the
// PWA's port (default 5180, or any free one if that is taken).
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { serveStatic, type StaticServer } from '@kai-sync/browser-harness'
import { DIST, buildWeb } from '../apps/web/build/build'

const root = fileURLToPath(new URL('..', import.meta.url))
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href

/** The newest modification time under `dir` (sources only; no node_modules, no dist). */
function newest(dir: string): number {
  let latest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist') continue
    const path = join(dir, entry.name)
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs)
  }
  return latest
}

async function buildIfStale(): Promise<void> {
  const built = join(DIST, 'pwa/app.js')
  const sources = Math.max(newest(join(root, 'apps/web')), ...readdirSync(join(root, 'packages')).map((p) => newest(join(root, 'packages', p, 'src'))))
  if (existsSync(built) && statSync(built).mtimeMs >= sources) return
  const started = performance.now()
  await buildWeb()
  process.stderr.write(`built the web app in ${Math.round(performance.now() - started)} ms\n`)
}

/** Starts the relay's demo and resolves with its port once it listens; its log passes through. */
function startRelay(args: string[]): Promise<{ port: number; stop: () => void }> {
  const child = spawn(process.execPath, ['--import', TSX, join(root, 'apps/relay/src/demo.ts'), ...args], { stdio: ['ignore', 'inherit', 'pipe'] })
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
  }
  process.on('exit', stop)
  return new Promise((resolve, reject) => {
    let buffer = ''
    child.stderr!.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk)
      buffer += chunk.toString()
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        try {
          const entry = JSON.parse(line) as { msg?: string; port?: number }
          if (entry.msg === 'listening' && entry.port) resolve({ port: entry.port, stop })
        } catch {
          // not a log line
        }
      }
    })
    child.once('exit', (code) => {
      reject(new Error(`the relay exited (${code})`))
      process.exit(code ?? 1)
    })
  })
}

async function servePwa(): Promise<StaticServer> {
  const dir = join(DIST, 'pwa')
  const wanted = Number(process.env.KAI_WEB_PORT ?? 5180)
  try {
    return await serveStatic({ dir, port: wanted })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || process.env.KAI_WEB_PORT) throw e
    return serveStatic({ dir, port: 0 })
  }
}

await buildIfStale()
// pnpm passes a leading '--' through.
const args = process.argv.slice(2)
const relay = await startRelay(args[0] === '--' ? args.slice(1) : args)
const web = await servePwa()
const relayUrl = `ws://127.0.0.1:${relay.port}`
const appUrl = `${web.url}/?relay=${encodeURIComponent(relayUrl)}`
process.stdout.write(
  [
    '',
    'kai-sync is running',
    `  relay    ${relayUrl}  (metrics: http://127.0.0.1:${relay.port}/metrics)`,
    `  web app  ${appUrl}`,
    `  extension: load ${join(DIST, 'extension')} unpacked, then open its tab page with ?relay=${encodeURIComponent(relayUrl)}&app=${encodeURIComponent(`${web.url}/`)}`,
    'Ctrl+C stops both.',
    '',
  ].join('\n'),
)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    relay.stop()
    void web.close().then(() => process.exit(0))
  })
}
