import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { LevelUpdateStore, PostgresUpdateStore, type UpdateStore } from '@kai-sync/storage'
import type { RelayConfig } from './config'
import type { Logger } from './log'
import { RelayServer } from './relay-server'
import { RedisFanout } from './redis-fanout'
import { PeerFederation } from './peer-federation'
import { LevelHandoffStore } from './level-handoff-store'

export interface StartOptions {
  /** Runs on the opened store before the relay accepts anyone (the demo removes its last room here). */
  beforeStart?: (store: UpdateStore) => Promise<void>
}

/** A relay as its configuration says: LevelDB, or PostgreSQL with Redis; handoff tokens on disk or in Redis; peers if any. */
export async function startRelay(config: RelayConfig, log: Logger, options: StartOptions = {}): Promise<RelayServer> {
  let store: UpdateStore
  if (config.postgresUrl) {
    store = await PostgresUpdateStore.open(config.postgresUrl)
  } else {
    mkdirSync(config.dataDir, { recursive: true })
    store = await LevelUpdateStore.open(config.dataDir)
  }
  const fanout = config.redisUrl ? await RedisFanout.connect(config.redisUrl, log) : undefined
  // Burned handoff tokens must outlive a restart: in Redis when scaled out, else on disk beside the store.
  mkdirSync(config.dataDir, { recursive: true })
  const handoffStore = fanout?.handoffs ?? (await LevelHandoffStore.open(join(config.dataDir, 'handoffs')))
  await options.beforeStart?.(store)
  const federation = config.peers.length > 0 ? await PeerFederation.create(config.peers, config.dataDir, log) : undefined
  return RelayServer.start({
    host: config.host,
    port: config.port,
    store,
    limits: config.limits,
    logger: log,
    fanout,
    nonces: fanout?.nonces,
    handoffStore,
    federation,
    unsafeSkipSignatures: config.unsafeSkipSignatures,
    metrics: config.metrics,
  })
}

/** Stops the relay cleanly on SIGTERM or SIGINT, then exits. */
export function stopOnSignals(relay: RelayServer, log: Logger, before: () => void = () => {}): void {
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    log.info('signal', { signal })
    before()
    relay.close().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error('shutdown failed', { error: (e as Error).message })
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}
