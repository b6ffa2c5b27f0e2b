import { mkdirSync } from 'node:fs'
import { LevelUpdateStore, PostgresUpdateStore, type UpdateStore } from '@kai-sync/storage'
import { toKaiError } from '@kai-sync/model'
import { parseConfig, usage } from './config'
import { createLogger } from './log'
import { RelayServer } from './relay-server'
import { RedisFanout } from './redis-fanout'
import { PeerFederation } from './peer-federation'

// `kai-relay`: composes the parts from its flags and environment, runs
// until SIGTERM or SIGINT, then stores every room and exits.

async function main(): Promise<void> {
  let config
  try {
    config = parseConfig(process.argv.slice(2), process.env)
  } catch (e) {
    process.stderr.write(`${toKaiError(e).message}\n\n${usage()}\n`)
    process.exit(2)
  }
  if (config === 'help') {
    process.stdout.write(usage() + '\n')
    return
  }
  const log = createLogger(config.logLevel)
  let store: UpdateStore
  if (config.postgresUrl) {
    store = await PostgresUpdateStore.open(config.postgresUrl)
  } else {
    mkdirSync(config.dataDir, { recursive: true })
    store = await LevelUpdateStore.open(config.dataDir)
  }
  const fanout = config.redisUrl ? await RedisFanout.connect(config.redisUrl, log) : undefined
  const federation = config.peers.length > 0 ? await PeerFederation.create(config.peers, config.dataDir, log) : undefined
  const relay = await RelayServer.start({
    host: config.host,
    port: config.port,
    store,
    limits: config.limits,
    logger: log,
    fanout,
    nonces: fanout?.nonces,
    federation,
    unsafeSkipSignatures: config.unsafeSkipSignatures,
  })
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    log.info('signal', { signal })
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

main().catch((e: unknown) => {
  const err = toKaiError(e)
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'relay failed to start', code: err.code, error: err.message }) + '\n')
  process.exit(1)
})
