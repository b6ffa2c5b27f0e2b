import { toKaiError } from '@kai-sync/model'
import { parseConfig, usage, type RelayConfig } from './config'
import { createLogger } from './log'
import { startRelay, stopOnSignals } from './compose'

// `kai-relay`: composes the parts from its flags and environment, runs
// until SIGTERM or SIGINT, then stores every room and exits.

async function main(): Promise<void> {
  let config: RelayConfig | 'help'
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
  stopOnSignals(await startRelay(config, log), log)
}

main().catch((e: unknown) => {
  const err = toKaiError(e)
  createLogger('error').error('relay failed to start', { code: err.code, error: err.message })
  process.exit(1)
})
