import { parseArgs } from 'node:util'
import { KaiError } from '@kai-sync/model'
import { DEFAULT_LIMITS, type RelayLimits } from './limits'
import type { LogLevel } from './log'

export interface RelayConfig {
  host: string
  port: number
  dataDir: string
  redisUrl?: string | undefined
  postgresUrl?: string | undefined
  peers: string[]
  logLevel: LogLevel
  limits: RelayLimits
  unsafeSkipSignatures: boolean
  /** False with `--metrics off`: nothing recorded, GET /metrics answers 404. */
  metrics: boolean
}

/** Each flag, its environment variable, and what it means; `--help` prints this. */
const FLAGS = {
  host: ['KAI_RELAY_HOST', 'address to listen on (default 127.0.0.1)'],
  port: ['KAI_RELAY_PORT', 'port to listen on; 0 picks a free one (default 1234)'],
  'data-dir': ['KAI_RELAY_DATA_DIR', 'directory of the embedded LevelDB store (default ./.data/relay)'],
  'redis-url': ['KAI_RELAY_REDIS_URL', 'Redis for fan-out between relay processes (with --postgres-url)'],
  'postgres-url': ['KAI_RELAY_POSTGRES_URL', 'PostgreSQL for durable state shared by relay processes'],
  peer: ['KAI_RELAY_PEERS', 'ws:// URL of a peer relay to mirror rooms with; repeatable (env: comma-separated)'],
  'log-level': ['KAI_RELAY_LOG_LEVEL', 'debug, info, warn or error (default info)'],
  'max-message-bytes': ['KAI_RELAY_MAX_MESSAGE_BYTES', `largest frame (default ${DEFAULT_LIMITS.maxMessageBytes})`],
  'max-items-per-update': ['KAI_RELAY_MAX_ITEMS_PER_UPDATE', `Yjs items one update may carry (default ${DEFAULT_LIMITS.maxItemsPerUpdate})`],
  'max-messages-per-second': ['KAI_RELAY_MAX_MESSAGES_PER_SECOND', `per connection (default ${DEFAULT_LIMITS.messagesPerSecond})`],
  'message-burst': ['KAI_RELAY_MESSAGE_BURST', `messages above the rate allowed in a burst (default ${DEFAULT_LIMITS.messageBurst})`],
  'max-bytes-per-second': ['KAI_RELAY_MAX_BYTES_PER_SECOND', `bytes received per connection per second (default ${DEFAULT_LIMITS.bytesPerSecond})`],
  'byte-burst': ['KAI_RELAY_BYTE_BURST', `bytes allowed in a burst above that rate; never below --max-message-bytes (default ${DEFAULT_LIMITS.byteBurst})`],
  'max-rooms-per-client': ['KAI_RELAY_MAX_ROOMS_PER_CLIENT', `open room connections per client address (default ${DEFAULT_LIMITS.maxRoomsPerClient})`],
  'pre-auth-timeout-ms': ['KAI_RELAY_PRE_AUTH_TIMEOUT_MS', `time to send the upgrade request, or a new room's genesis (default ${DEFAULT_LIMITS.preAuthTimeoutMs})`],
  'membership-grace-ms': ['KAI_RELAY_MEMBERSHIP_GRACE_MS', `how long a device not yet in the roster may wait for its enrollment (default ${DEFAULT_LIMITS.membershipGraceMs})`],
  'enrollment-deadline-ms': ['KAI_RELAY_ENROLLMENT_DEADLINE_MS', `how long a device that resumed a handoff may sync before its roster entry arrives (default ${DEFAULT_LIMITS.enrollmentDeadlineMs})`],
  'idle-room-ms': ['KAI_RELAY_IDLE_ROOM_MS', `unload a room this long after its last client left (default ${DEFAULT_LIMITS.idleRoomMs})`],
  'compact-stored-after': ['KAI_RELAY_COMPACT_STORED_AFTER', `merge a room's stored records into one past this many (default ${DEFAULT_LIMITS.compactStoredAfter})`],
  'handoff-per-minute': ['KAI_RELAY_HANDOFF_PER_MINUTE', `handoff and resume requests per client address per minute (default ${DEFAULT_LIMITS.handoffPerMinute})`],
  metrics: ['KAI_RELAY_METRICS', 'on or off (default on); off records nothing, and GET /metrics answers 404 metrics_off'],
  'unsafe-skip-signatures': ['KAI_RELAY_UNSAFE_SKIP_SIGNATURES', 'benchmarks only: do not verify Ed25519 signatures'],
} as const

export function usage(): string {
  const lines = ['Usage: kai-relay [flags]   (each flag can also be set by its environment variable)', '']
  for (const [flag, [env, help]] of Object.entries(FLAGS)) lines.push(`  --${flag.padEnd(26)} ${env.padEnd(36)} ${help}`)
  return lines.join('\n')
}

/** Flags win over environment variables, which win over defaults. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): RelayConfig | 'help' {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      help: { type: 'boolean' },
      peer: { type: 'string', multiple: true },
      'unsafe-skip-signatures': { type: 'boolean' },
      ...Object.fromEntries(
        Object.keys(FLAGS)
          .filter((f) => f !== 'peer' && f !== 'unsafe-skip-signatures')
          .map((f) => [f, { type: 'string' as const }]),
      ),
    },
  })
  if (values.help) return 'help'
  const get = (flag: keyof typeof FLAGS): string | undefined => {
    const v = (values as Record<string, unknown>)[flag]
    return typeof v === 'string' ? v : env[FLAGS[flag][0]] || undefined
  }
  const int = (flag: keyof typeof FLAGS, fallback: number): number => {
    const text = get(flag)
    if (text === undefined) return fallback
    const n = Number(text)
    if (!Number.isInteger(n) || n < 0) throw new KaiError('invalid_input', `--${flag} (${FLAGS[flag][0]}) must be a whole number, not "${text}"`)
    return n
  }
  const logLevel = (get('log-level') ?? 'info') as LogLevel
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) throw new KaiError('invalid_input', '--log-level must be debug, info, warn or error')
  const peers = (values.peer as string[] | undefined) ?? (env.KAI_RELAY_PEERS ? env.KAI_RELAY_PEERS.split(',').map((s) => s.trim()).filter(Boolean) : [])
  for (const p of peers) if (!/^wss?:\/\//.test(p)) throw new KaiError('invalid_input', `--peer must be a ws:// or wss:// URL, not "${p}"`)
  const redisUrl = get('redis-url')
  const postgresUrl = get('postgres-url')
  if (redisUrl && !postgresUrl) throw new KaiError('invalid_input', '--redis-url needs --postgres-url: processes that share rooms must share storage')
  const metrics = get('metrics') ?? 'on'
  if (metrics !== 'on' && metrics !== 'off') throw new KaiError('invalid_input', `--metrics (KAI_RELAY_METRICS) must be on or off, not "${metrics}"`)
  return {
    host: get('host') ?? '127.0.0.1',
    port: int('port', 1234),
    dataDir: get('data-dir') ?? './.data/relay',
    redisUrl,
    postgresUrl,
    peers,
    logLevel,
    unsafeSkipSignatures: values['unsafe-skip-signatures'] === true || env.KAI_RELAY_UNSAFE_SKIP_SIGNATURES === '1',
    metrics: metrics === 'on',
    limits: {
      ...DEFAULT_LIMITS,
      maxMessageBytes: int('max-message-bytes', DEFAULT_LIMITS.maxMessageBytes),
      maxItemsPerUpdate: int('max-items-per-update', DEFAULT_LIMITS.maxItemsPerUpdate),
      messagesPerSecond: int('max-messages-per-second', DEFAULT_LIMITS.messagesPerSecond),
      messageBurst: int('message-burst', DEFAULT_LIMITS.messageBurst),
      bytesPerSecond: int('max-bytes-per-second', DEFAULT_LIMITS.bytesPerSecond),
      byteBurst: int('byte-burst', DEFAULT_LIMITS.byteBurst),
      maxRoomsPerClient: int('max-rooms-per-client', DEFAULT_LIMITS.maxRoomsPerClient),
      preAuthTimeoutMs: int('pre-auth-timeout-ms', DEFAULT_LIMITS.preAuthTimeoutMs),
      idleRoomMs: int('idle-room-ms', DEFAULT_LIMITS.idleRoomMs),
      membershipGraceMs: int('membership-grace-ms', DEFAULT_LIMITS.membershipGraceMs),
      enrollmentDeadlineMs: int('enrollment-deadline-ms', DEFAULT_LIMITS.enrollmentDeadlineMs),
      compactStoredAfter: int('compact-stored-after', DEFAULT_LIMITS.compactStoredAfter),
      handoffPerMinute: int('handoff-per-minute', DEFAULT_LIMITS.handoffPerMinute),
    },
  }
}
