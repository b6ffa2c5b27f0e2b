import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fromBase64Url, grantKey } from '@kai-sync/crypto'
import { transportOrigin, type SyncEngine } from '@kai-sync/engine'
import type { Logger } from './log'

// `pnpm start` with a model endpoint in the environment (OPENAI_BASE_URL,
// and OPENAI_API_KEY, KAI_AGENT_MODEL if it needs them): the demo session
// gets a real agent. `kai agent` runs as its own process (the CLI named by
// KAI_DEMO_AGENT_CLI, which scripts/start.ts sets) with a fresh data
// directory, so its own key; the demo device enrolls it as a writer by its
// public keys, as `kai device add` does, and it joins through the relay.
// It inherits the environment: the key reaches it there, never argv. Pages
// see its `agent.present` entry and leave the answering to it.

export interface DemoAgent {
  stop(): void
}

const READY_MS = 60_000

const GRANT_ORIGIN = transportOrigin('demo-enrolment')

/** `sent` resolves once the relay holds what the demo device wrote (its roster entry and key grants for the agent). */
export async function startDemoAgent(engine: SyncEngine, where: { cli: string; relayUrl: string; sent: () => Promise<void> }, log: Logger): Promise<DemoAgent> {
  const home = mkdtempSync(join(tmpdir(), 'kai-demo-agent-'))
  const dataDir = join(home, 'data')
  // Under tsx, as this process runs: its loader flags (execArgv) run the CLI's TypeScript too.
  const child = spawn(process.execPath, [...process.execArgv, where.cli, '--data-dir', dataDir, 'agent', '--port', '0', '--relay', where.relayUrl, '--label', 'kai agent'], {
    stdio: ['ignore', 'inherit', 'pipe'],
  })
  const stop = () => {
    child.kill('SIGTERM')
    rmSync(home, { recursive: true, force: true })
  }
  try {
    const url = await listening(child)
    const token = readFileSync(join(dataDir, 'token'), 'utf8').trim()
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) })
      if (!res.ok) throw new Error(`the demo's agent device answered ${method} ${path} with ${res.status}: ${await res.text()}`)
      return res.json() as Promise<Record<string, unknown>>
    }
    const identity = (await api('GET', '/device')) as { device: string; box: string }
    // As `kai device add` does: a writer's roster entry, and every epoch's session key wrapped for its box key.
    const device = fromBase64Url(identity.device)!
    const box = fromBase64Url(identity.box)!
    await engine.setRole(device, 'writer', { label: 'kai agent', box })
    const grants = await Promise.all(engine.keys.epochs().map((epoch) => grantKey({ sessionId: engine.sessionId, key: engine.keys.get(epoch)!, recipient: device, recipientBox: box, issuer: engine.device })))
    engine.wire.addKeyGrants(grants.map((g) => g.bytes), GRANT_ORIGIN)
    await engine.flush()
    await where.sent()
    await api('POST', `/session/${engine.sessionId}/join`, { wait_ms: 30_000 })
    log.info('the demo session is answered by kai agent', { device: identity.device, model: process.env.KAI_AGENT_MODEL ?? null, endpoint: process.env.OPENAI_BASE_URL })
    return { stop }
  } catch (e) {
    stop()
    throw e
  }
}

/** The daemon's URL from its `listening` log line (stderr); its other log lines pass through. */
function listening(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the demo\'s agent device did not start listening')), READY_MS)
    child.once('exit', (code) => reject(new Error(`the demo's agent device exited (${code}) before it listened`)))
    createInterface({ input: child.stderr! }).on('line', (line) => {
      process.stderr.write(`${line}\n`)
      if (!line.includes('"msg":"listening"')) return
      try {
        const entry = JSON.parse(line) as { url?: string; port?: number }
        clearTimeout(timer)
        resolve(entry.url ?? `http://127.0.0.1:${entry.port}`)
      } catch {
        // not a log line of the daemon's
      }
    })
  })
}
