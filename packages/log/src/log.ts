import { toBase64Url } from '@kai-sync/crypto'

// Structured logs: one JSON object a line. Callers pass fields, never
// request URLs or headers (a URL carries the capability, a secret), and
// devices appear only as a short tag of their public key.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export type LogFields = Record<string, string | number | boolean | undefined>

export interface Logger {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
}

export function createLogger(level: LogLevel = 'info', write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const min = ORDER[level]
  const emit = (l: LogLevel, msg: string, fields?: LogFields) => {
    if (ORDER[l] < min) return
    write(JSON.stringify({ time: new Date().toISOString(), level: l, msg, ...fields }) + '\n')
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  }
}

/** A device as logs name it: the first 8 characters of its public key. */
export function deviceTag(publicKey: Uint8Array | null): string {
  return publicKey ? toBase64Url(publicKey).slice(0, 8) : 'peer'
}
