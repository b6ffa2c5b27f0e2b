import { defaultDataDir } from '../data-dir'
import { KaiError, toKaiError } from '@kai-sync/model'
import { DaemonClient } from './daemon-client'
import { COMMANDS, type CliContext } from './commands'
import { AGENT_HELP, DAEMON_HELP, runDaemon } from './daemon-command'

// `kai`: the CLI. `kai daemon` runs the daemon; every other command talks to
// a running one over its REST API, with the token from the data directory.

const HELP = `kai: sessions of AI agents, synced and end-to-end encrypted

usage: kai [--data-dir DIR] [--url URL] [--json] <command> …

  ${DAEMON_HELP.split('\n')[0]}
  ${AGENT_HELP.split('\n')[0]}
${Object.values(COMMANDS).map((c) => `  ${c.help}`).join('\n')}

  --data-dir DIR   keys, token and store (KAI_DATA_DIR, default ~/.kai)
  --url URL        the daemon's address (KAI_URL; default: read from the data directory)
  --json           print JSON for scripts instead of text

The token is read from <data-dir>/token (or KAI_TOKEN).`

interface Globals {
  dataDir: string
  url: string | undefined
  json: boolean
  rest: string[]
}

/** Global options may stand anywhere; everything else is the command's. */
function parseGlobals(argv: string[]): Globals {
  const globals: Globals = { dataDir: defaultDataDir(), url: process.env.KAI_URL, json: false, rest: [] }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--json') globals.json = true
    else if (arg === '--data-dir' && argv[i + 1] !== undefined) globals.dataDir = defaultDataDir({ KAI_DATA_DIR: argv[++i]! })
    else if (arg === '--url' && argv[i + 1] !== undefined) globals.url = argv[++i]
    else if (arg.startsWith('--data-dir=')) globals.dataDir = defaultDataDir({ KAI_DATA_DIR: arg.slice(11) })
    else if (arg.startsWith('--url=')) globals.url = arg.slice(6)
    else globals.rest.push(arg)
  }
  return globals
}

async function main(): Promise<number> {
  const globals = parseGlobals(process.argv.slice(2))
  const [name, ...argv] = globals.rest
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(HELP + '\n')
    return name ? 0 : 2
  }
  if (name === 'daemon' || name === 'agent') {
    if (argv.includes('--help')) {
      process.stdout.write((name === 'agent' ? AGENT_HELP : DAEMON_HELP) + '\n')
      return 0
    }
    await runDaemon(argv, globals.dataDir, { agent: name === 'agent' })
    return -1 // keeps running
  }
  const command = COMMANDS[name]
  if (!command) {
    process.stderr.write(`kai: no command "${name}"\n\n${HELP}\n`)
    return 2
  }
  const abort = new AbortController()
  process.once('SIGINT', () => abort.abort())
  let client: DaemonClient | undefined
  const ctx: CliContext = {
    client: () => (client ??= new DaemonClient({ dataDir: globals.dataDir, ...(globals.url ? { url: globals.url } : {}), ...(process.env.KAI_TOKEN ? { token: process.env.KAI_TOKEN } : {}) })),
    json: globals.json,
    out: (text) => process.stdout.write(text),
    stdin: process.stdin,
    signal: abort.signal,
  }
  await command.run(ctx, argv)
  return 0
}

main().then(
  (code) => {
    if (code >= 0) process.exitCode = code
  },
  (e: unknown) => {
    // node:util parseArgs throws TypeErrors coded ERR_PARSE_ARGS_* for unknown or malformed options.
    const parseError = (e as { code?: unknown }).code?.toString().startsWith('ERR_PARSE_ARGS')
    const error = parseError ? new KaiError('invalid_input', `usage: ${(e as Error).message}`) : toKaiError(e)
    const json = process.argv.includes('--json')
    process.stderr.write(json ? JSON.stringify({ error: error.toJSON() }) + '\n' : `kai: ${error.message}\n`)
    process.exitCode = error.code === 'invalid_input' && error.message.includes('usage:') ? 2 : 1
  },
)
