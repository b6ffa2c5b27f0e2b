import { hostname } from 'node:os'
import { parseArgs } from 'node:util'
import { readFileSync } from 'node:fs'
import { KaiError } from '@kai-sync/model'
import { startDaemon } from '../daemon'
import { createLogger, LOG_LEVELS, type LogLevel } from '../log'

// `kai daemon`: runs the daemon in the foreground until SIGINT or SIGTERM.
// Logs go to stderr as JSON lines; stdout gets a few lines for a person.

export const DEFAULT_PORT = 7420

export const DAEMON_HELP = `kai daemon [options]        run the daemon in the foreground

  --port N          port on 127.0.0.1 (KAI_PORT, default ${DEFAULT_PORT}; 0 picks a free one)
  --relay URL       ws:// or wss:// relay to sync through (KAI_RELAY; none: this device only)
  --app-url URL     where handoff links point, the web app's resume page (KAI_APP_URL)
  --label NAME      how this device shows in rosters (KAI_LABEL, default "headless on <host>")
  --log-level L     debug, info, warn or error (KAI_LOG_LEVEL, default info)
  --body-limit N    largest request body in bytes (default 1048576)
  --compact-after N compact a session's log once it holds N envelopes (KAI_COMPACT_AFTER, default 500)
  --agent           also run the agent device: it answers user messages (see kai agent --help)
  --model NAME      the agent's model when a session's config names none (KAI_AGENT_MODEL)`

export const AGENT_HELP = `kai agent [daemon options]  run the daemon with the agent device: a model answers in its sessions

The agent is this daemon's device (its own key, in the data directory): in
every session it holds as a writer it answers each new user message with a
reply streamed from an OpenAI-compatible chat-completions endpoint (OpenAI,
Ollama, llama.cpp's server, vLLM, LM Studio…), through the openai package.

  --model NAME      the model when the session's config names none (KAI_AGENT_MODEL);
                    the session's config.model, set anywhere, overrides it from the next answer
  OPENAI_BASE_URL   the endpoint, e.g. http://127.0.0.1:11434/v1 for Ollama (default api.openai.com)
  OPENAI_API_KEY    its key (local servers take any; it is never logged or written to a session)

It sends the system prompt, then the session's history in view order, with
the session's resolved config.temperature, max_tokens and tools (tools are
offered by name; this agent runs none yet: a tool call ends the reply in
error). A reply ends complete, stopped (kai stop, or a stop from any device:
the model request is aborted), error (model_unreachable, model_unauthorized,
model_rate_limited, model_stream_cut, model_error; shown on the reply) or,
if the agent was killed mid-reply, interrupted (marked when it starts
again). kai retry <session> <reply> asks it to answer again. Every turn adds
an agent.turn audit entry (model, tokens, time to first token, duration,
outcome).

Sessions get to the agent like to any daemon: kai create here, or on
another device kai device add <session> <this device> <box> then kai join,
or kai resume - with a handoff link.

daemon options:
${DAEMON_HELP.split('\n').slice(2).join('\n')}`

export async function runDaemon(argv: string[], dataDir: string, defaults: { agent?: boolean } = {}): Promise<void> {
  const env = process.env
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: env.KAI_PORT ?? String(DEFAULT_PORT) },
      relay: { type: 'string', default: env.KAI_RELAY },
      'app-url': { type: 'string', default: env.KAI_APP_URL ?? 'kai://resume' },
      label: { type: 'string', default: env.KAI_LABEL ?? `headless on ${hostname()}` },
      'log-level': { type: 'string', default: env.KAI_LOG_LEVEL ?? 'info' },
      'body-limit': { type: 'string' },
      'compact-after': { type: 'string', default: env.KAI_COMPACT_AFTER },
      agent: { type: 'boolean', default: defaults.agent ?? false },
      model: { type: 'string', default: env.KAI_AGENT_MODEL },
    },
  })
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new KaiError('invalid_input', `--port must be 0 to 65535 (got ${values.port})`)
  const level = values['log-level'] as LogLevel
  if (!LOG_LEVELS.includes(level)) throw new KaiError('invalid_input', `--log-level must be one of ${LOG_LEVELS.join(', ')}`)
  const bodyLimit = values['body-limit'] ? Number(values['body-limit']) : undefined
  if (bodyLimit !== undefined && !(bodyLimit > 0)) throw new KaiError('invalid_input', '--body-limit must be a positive number of bytes')
  const compactAfter = values['compact-after'] ? Number(values['compact-after']) : undefined
  if (compactAfter !== undefined && !(Number.isInteger(compactAfter) && compactAfter > 0)) throw new KaiError('invalid_input', '--compact-after must be a positive number of envelopes')
  const log = createLogger(level)
  // One y-websocket provider per session adds a process 'exit' listener.
  process.setMaxListeners(0)
  const daemon = await startDaemon({
    dataDir,
    port,
    appUrl: values['app-url']!,
    label: values.label!,
    log,
    ...(values.relay ? { relayUrl: values.relay } : {}),
    ...(bodyLimit ? { bodyLimit } : {}),
    ...(compactAfter ? { compactAfter } : {}),
    ...(values.agent
      ? {
          agent: {
            name: 'kai agent',
            ...(values.model ? { model: values.model } : {}),
            ...(env.OPENAI_BASE_URL ? { baseURL: env.OPENAI_BASE_URL } : {}),
            ...(env.OPENAI_API_KEY ? { apiKey: env.OPENAI_API_KEY } : {}),
          },
        }
      : {}),
  })
  const lines = [`kai daemon listening on ${daemon.url}`, `device ${daemon.device}`, `data   ${dataDir}`]
  if (values.agent) lines.push(`agent  answers with ${values.model ?? 'the model in each session\'s config'} at ${env.OPENAI_BASE_URL ?? 'api.openai.com'}`)
  if (daemon.tokenCreated) {
    // The token is shown to the person at the terminal once, never written
    // into a log: when stdout is not a terminal, only its file is named.
    if (process.stdout.isTTY) lines.push(`token  ${readFileSync(daemon.dataDir.tokenFile, 'utf8').trim()}   (first start; also in ${daemon.dataDir.tokenFile})`)
    else lines.push(`token  written to ${daemon.dataDir.tokenFile} (first start)`)
  }
  process.stdout.write(lines.join('\n') + '\n')
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    log.info('signal', { signal })
    daemon.close().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error('shutdown failed', { error: (e as Error).message })
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
}
