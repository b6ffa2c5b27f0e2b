import { pino } from 'pino'

// Structured logs through pino: one JSON object a line on stderr, written
// synchronously (a crash does not lose the last lines). Secrets are kept
// out as a rule, not by each caller's care: every field named for a
// secret is censored wherever it appears (top level or one object down,
// e.g. a request's headers), every URL field loses its query (where
// capabilities travel) and fragment (where handoff links carry the invite
// secret), and free-text fields (error messages from libraries) are
// scrubbed of both and of bearer credentials. The relay and the daemon
// share these rules, so a field is censored the same way in both.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error']

export type LogFields = Record<string, unknown>

export interface Logger {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
}

/** Fields whose whole value is a secret. */
export const SECRET_FIELDS = ['token', 'capability', 'cap', 'secret', 'invite', 'authorization', 'cookie', 'password', 'privateKey', 'secretKey', 'sessionKey', 'pkcs8', 'seed']
/** Fields holding a URL: kept without query and fragment. */
export const URL_FIELDS = ['url', 'link', 'href', 'location', 'referer']

export const REDACTED = '[redacted]'

const REDACT_PATHS = [...SECRET_FIELDS, ...URL_FIELDS].flatMap((f) => [f, `*.${f}`])

// Query strings, fragments and bearer credentials inside free text.
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  [/\?[^\s"']*/g, '?<redacted>'],
  [/#[^\s"']*/g, '#<redacted>'],
  [/Bearer\s+\S+/gi, 'Bearer <redacted>'],
]

/** Free text with query strings, fragments and bearer credentials removed. */
export function redactText(text: string): string {
  let out = text
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement)
  return out
}

function censor(value: unknown, path: string[]): unknown {
  const field = path[path.length - 1] ?? ''
  if (URL_FIELDS.includes(field) && typeof value === 'string') return value.replace(/[?#].*$/s, '')
  return REDACTED
}

/** pino's options for kai's processes: levels by name, `time` as ISO text, redaction. */
export function pinoOptions(level: LogLevel, timeField: string): pino.LoggerOptions {
  return {
    level,
    base: null,
    messageKey: 'msg',
    timestamp: () => `,"${timeField}":"${new Date().toISOString()}"`,
    formatters: {
      level: (label) => ({ level: label }),
      log: (fields) => {
        const out: Record<string, unknown> = {}
        for (const [k, v] of Object.entries(fields)) out[k] = typeof v === 'string' && !URL_FIELDS.includes(k) ? redactText(v) : v
        return out
      },
    },
    redact: { paths: REDACT_PATHS, censor },
  }
}

/** Wraps a pino logger in kai's `(msg, fields)` call shape. */
function wrapPino(p: pino.Logger): Logger {
  return {
    debug: (m, f) => p.debug(f ?? {}, m),
    info: (m, f) => p.info(f ?? {}, m),
    warn: (m, f) => p.warn(f ?? {}, m),
    error: (m, f) => p.error(f ?? {}, m),
  }
}

/**
 * A logger writing to stderr (synchronously), or to `write` (tests read
 * what it wrote). `timeField` names the timestamp (`time` for the relay,
 * `t` for the daemon, as their lines always had).
 */
export function createLogger(level: LogLevel = 'info', write?: (line: string) => void, timeField = 'time'): Logger {
  const destination = write ? { write } : pino.destination({ dest: 2, sync: true })
  return wrapPino(pino(pinoOptions(level, timeField), destination))
}
