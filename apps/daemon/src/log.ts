// Structured logs: one JSON object per line on stderr. Callers pass only
// what is safe to keep (ids, paths, codes, counts); no field ever holds a
// token, a key, a capability or a resume link. `redact` is the backstop for
// free text such as error messages from libraries.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export type LogFields = Record<string, string | number | boolean | null | undefined>

export interface Logger {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
}

// Query strings (where capabilities travel), link fragments (where handoff
// keys travel) and bearer headers never reach a log line.
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  [/\?[^\s"']*/g, '?<redacted>'],
  [/#[^\s"']*/g, '#<redacted>'],
  [/Bearer\s+\S+/gi, 'Bearer <redacted>'],
]

export function redact(text: string): string {
  let out = text
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement)
  return out
}

export function createLogger(level: LogLevel = 'info', write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const log = (at: LogLevel, msg: string, fields: LogFields = {}) => {
    if (ORDER[at] < ORDER[level]) return
    const entry: Record<string, unknown> = { t: new Date().toISOString(), level: at, msg }
    for (const [k, v] of Object.entries(fields)) {
      if (v !== undefined) entry[k] = typeof v === 'string' ? redact(v) : v
    }
    write(JSON.stringify(entry) + '\n')
  }
  return {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
  }
}

export const LOG_LEVELS = Object.keys(ORDER) as LogLevel[]
