// `pnpm start`: the relay with its demo session (apps/relay/src/demo.ts, in
// its own process), and the PWA served beside it, configured to use that
// relay. Builds the web app first when its sources are newer than dist/.
// Flags go to the relay (`pnpm start --port 4000`), except --show-link,
// which has the demo print a resume link and its QR code; KAI_WEB_PORT
// picks the PWA's port (default 5180, or any free one if that is taken).
// OPENAI_BASE_URL (with OPENAI_API_KEY, KAI_AGENT_MODEL as the endpoint
// needs) has a `kai agent` answer the demo session with that model.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { serveStatic, type StaticServer } from '@kai-sync/browser-harness'
import { RUN_TS, spawnChild, waitForListening, type ChildHandle } from '@kai-sync/process-harness'
import { DIST, buildWeb } from '@kai-sync/web/build'

const root = fileURLToPath(new URL('..', import.meta.url))
let stopping = false

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

/** Starts the relay's demo and resolves once it listens; its output passes through. */
async function startRelay(args: string[], appUrl: string, showLink: boolean): Promise<{ port: number; child: ChildHandle }> {
  // Given the web app's address (and asked to), the demo device prints a resume link into it.
  // With OPENAI_BASE_URL in the environment (inherited), the demo starts `kai agent` from this CLI to answer its session.
  const env = { KAI_DEMO_APP_URL: appUrl, KAI_DEMO_AGENT_CLI: join(root, 'apps/daemon/src/cli/main.ts'), ...(showLink ? { KAI_DEMO_SHOW_LINK: '1' } : {}) }
  const child = spawnChild(process.execPath, [...RUN_TS, join(root, 'apps/relay/src/demo.ts'), ...args], { echo: true, env })
  // Should the relay end on its own (--help, a port in use, a bad flag), so
  // does this script, once what the relay printed has been written out.
  void child.exited.then((code) => {
    if (!stopping) process.stdout.write('', () => process.exit(code ?? 1))
  })
  try {
    const { port } = await waitForListening(child, 60_000, 'the relay to listen')
    return { port, child }
  } catch (e) {
    // It ended first (its own output says why), or never listened: either
    // way the exit above follows, and nothing here is left to do.
    if (child.child.exitCode === null && child.child.signalCode === null) {
      process.stderr.write(`${(e as Error).message}\n`)
      await child.kill9()
    }
    return new Promise<never>(() => {})
  }
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
const given = process.argv.slice(2)
const args = (given[0] === '--' ? given.slice(1) : given).filter((a) => a !== '--show-link')
const web = await servePwa()
const relay = await startRelay(args, `${web.url}/`, given.includes('--show-link'))
const relayUrl = `ws://127.0.0.1:${relay.port}`
const appUrl = `${web.url}/?relay=${encodeURIComponent(relayUrl)}`
process.stdout.write(
  [
    '',
    'kai-sync is running',
    `  relay    ${relayUrl}  (metrics: http://127.0.0.1:${relay.port}/metrics)`,
    `  web app  ${appUrl}  (open it and say Use to the relay it offers)`,
    `  extension: load ${join(DIST, 'extension')} unpacked, open its tab page with ?relay=${encodeURIComponent(relayUrl)} (say Use), then set its web app address to ${web.url}/ in the handoff dialog`,
    'Ctrl+C stops both.',
    '',
  ].join('\n'),
)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    stopping = true
    // The relay flushes its store on SIGTERM: wait for it before exiting.
    void Promise.all([relay.child.stop(), web.close()]).then(() => process.exit(0))
  })
}
