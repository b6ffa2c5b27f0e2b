import { WebCryptoDeviceKey, capabilityToParam, signCapability } from '@kai-sync/crypto'
import { WireDoc, createSession } from '@kai-sync/engine'
import { connectRelay } from '@kai-sync/providers'
import { parseConfig } from './config'
import { createLogger } from './log'
import { startRelay, stopOnSignals } from './compose'

// `pnpm start`: the relay plus a demo session. A device created here (its
// key only in memory) opens a session through the relay and writes a few
// messages, so there is something to look at: the relay stores ciphertext
// only, and GET /metrics shows the traffic.

async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2), process.env)
  if (config === 'help') return
  const log = createLogger(config.logLevel)
  const relay = await startRelay(config, log)
  const device = await WebCryptoDeviceKey.generate()
  const wire = new WireDoc()
  const engine = await createSession({ device, mode: 'headless', agentId: 'demo-agent', userId: 'demo-user', wire, label: 'demo device' })
  const connection = await connectRelay(wire, relay.url, async () => capabilityToParam(await signCapability({ room: engine.sessionId }, device)), engine)
  await connection.whenSynced()
  engine.session.appendMessage({ id: 'demo-1', role: 'user', content: 'Hello from the demo device.' })
  engine.session.appendMessage({ id: 'demo-2', role: 'assistant', content: 'This text reached the relay only as ciphertext.' })
  await engine.flush()
  await connection.whenAcknowledged()
  log.info('demo session', { session: engine.sessionId, status: engine.status.state, envelopes: wire.envelopes().length, metrics: `http://${config.host}:${relay.port}/metrics` })
  stopOnSignals(relay, log, () => {
    connection.destroy()
    engine.destroy()
  })
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).message}\n`)
  process.exit(1)
})
