import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { UpdateStore } from '@kai-sync/storage'
import { WebCryptoDeviceKey } from '@kai-sync/crypto'
import { capabilityToParam, signCapability } from '@kai-sync/crypto/capability'
import { WireDoc, createSession, type SyncEngine } from '@kai-sync/engine'
import { httpHandoffRelay, initiateHandoff, qrForTerminal } from '@kai-sync/handoff'
import { connectRelay } from '@kai-sync/providers'
import { parseConfig, usage } from './config'
import { createLogger, type Logger } from './log'
import { startRelay, stopOnSignals } from './compose'
import { startDemoAgent } from './demo-agent-device'

// `pnpm start`: the relay plus a demo session. A device created here (its
// key only in memory) opens a session through the relay and writes a few
// messages, so there is something to look at: the relay stores ciphertext
// only, and GET /metrics shows the traffic. Given the web app's address
// (KAI_DEMO_APP_URL, set by scripts/start.ts) and asked to show a link
// (KAI_DEMO_SHOW_LINK=1, which `pnpm start --show-link` sets), it also
// hands the session off: it prints a resume link, and its QR code, that
// opens the session in the web app as a second writer. Unasked, it prints
// no link: a terminal's scrollback is kept and shared more than people
// think.
//
// The demo device's key lives only in memory, so nobody can write to a
// demo session again once its process ends: each start removes the last
// demo's room (its id is kept in `demo-session` in the data directory), so
// repeated starts do not fill the store with dead demo rooms. A browser
// that opened that session keeps its own copy.
//
// With OPENAI_BASE_URL set (and KAI_DEMO_AGENT_CLI, the kai CLI, which
// scripts/start.ts sets), a `kai agent` process joins the demo session as a
// writer and answers it with that model (demo-agent-device.ts); pages then
// run no demo agent. Without it, pages answer with their demo agent.

const LAST_DEMO = 'demo-session'

async function forgetLastDemo(store: UpdateStore, dataDir: string, log: Logger): Promise<void> {
  const file = join(dataDir, LAST_DEMO)
  if (!existsSync(file)) return
  const room = readFileSync(file, 'utf8').trim()
  if (room) await store.deleteRoom(room)
  log.info('removed the last demo session', { session: room })
}

async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2), process.env)
  if (config === 'help') {
    process.stdout.write(`${usage()}\n`)
    return
  }
  const log = createLogger(config.logLevel)
  const relay = await startRelay(config, log, { beforeStart: (store) => forgetLastDemo(store, config.dataDir, log) })
  // Stop cleanly from here on, even if a signal comes while the demo is still being set up.
  const cleanups: (() => void)[] = []
  stopOnSignals(relay, log, () => {
    for (const cleanup of cleanups.reverse()) cleanup()
  })
  const device = await WebCryptoDeviceKey.generate()
  const wire = new WireDoc()
  const engine = await createSession({ device, mode: 'headless', agentId: 'demo-agent', userId: 'demo-user', wire, label: 'demo device' })
  writeFileSync(join(config.dataDir, LAST_DEMO), engine.sessionId)
  cleanups.push(() => engine.destroy())
  const connection = await connectRelay(wire, relay.url, async () => capabilityToParam(await signCapability({ room: engine.sessionId }, device)), engine)
  cleanups.push(() => connection.destroy())
  await connection.whenSynced()
  engine.session.appendMessage({ id: 'demo-1', role: 'user', content: 'Hello from the demo device.' })
  engine.session.appendMessage({ id: 'demo-2', role: 'assistant', content: 'This text reached the relay only as ciphertext.' })
  await engine.flush()
  await connection.whenAcknowledged()
  log.info('demo session', { session: engine.sessionId, status: engine.status.state, envelopes: wire.envelopes().length, metrics: `http://${config.host}:${relay.port}/metrics` })
  const agentCli = process.env.KAI_DEMO_AGENT_CLI
  if (process.env.OPENAI_BASE_URL && agentCli) {
    const agent = await startDemoAgent(engine, { cli: agentCli, relayUrl: relay.url, sent: () => connection.whenAcknowledged() }, log)
    cleanups.push(() => agent.stop())
    process.stdout.write(`\nThe demo session is answered by kai agent: model ${process.env.KAI_AGENT_MODEL ?? '(the session\'s config.model)'} at ${process.env.OPENAI_BASE_URL}\n`)
  } else if (process.env.KAI_DEMO_APP_URL) {
    process.stdout.write('\nNo model endpoint (OPENAI_BASE_URL) set: pages answer the demo session with their built-in demo agent.\n')
  }
  const appUrl = process.env.KAI_DEMO_APP_URL
  const show = process.env.KAI_DEMO_SHOW_LINK === '1'
  const links = appUrl && show ? offerLinks(engine, { appUrl, relayUrl: relay.url }, log, () => connection.whenAcknowledged()) : null
  if (links) cleanups.push(() => links.stop())
  if (appUrl && !show) process.stdout.write('\nTo open the demo session in the web app, run pnpm start --show-link: it prints a resume link and its QR code.\n')
}

/**
 * Keeps one resume link on offer: a new one once the last was used (a
 * device joined the roster) or expired. The link carries the invite secret
 * (no session key) in its fragment, so it goes to this terminal (stdout)
 * only, never to the log, and works once, for five minutes.
 */
function offerLinks(engine: SyncEngine, where: { appUrl: string; relayUrl: string }, log: Logger, sent: () => Promise<void>): { stop(): void } {
  const devices = () => engine.roster.list().filter((m) => m.role === 'owner' || m.role === 'writer' || m.role === 'reader').length
  let known = devices()
  let expiry: ReturnType<typeof setTimeout> | undefined
  let stopped = false
  const offer = async () => {
    clearTimeout(expiry)
    const handoff = await initiateHandoff(
      engine,
      { session_id: engine.sessionId, source_mode: 'headless', target_mode: 'desktop', transfer_type: 'mirror' },
      { appUrl: where.appUrl, relayUrl: where.relayUrl, relay: httpHandoffRelay(where.relayUrl), label: 'demo device' },
    )
    // The invite's roster entry must reach the relay before the link is used.
    await sent()
    if (stopped) return
    process.stdout.write(`\nOpen the demo session in the web app (this link works once, for five minutes):\n${handoff.resume_url}\n\n${await qrForTerminal(handoff.resume_url)}\n`)
    log.info('demo handoff offered', { expiresAt: new Date(handoff.expires_at).toISOString() })
    expiry = setTimeout(again, Math.max(1000, handoff.expires_at - Date.now()))
  }
  const again = () => {
    if (!stopped) offer().catch((e: unknown) => log.error('demo handoff failed', { error: (e as Error).message }))
  }
  engine.roster.on('change', () => {
    const now = devices()
    if (now > known) again()
    known = now
  })
  again()
  return {
    stop() {
      stopped = true
      clearTimeout(expiry)
    },
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).message}\n`)
  process.exit(1)
})
