import { createLogger as create, redactText, type Logger, type LogLevel } from '@kai-sync/log'

// The daemon logs through @kai-sync/log (pino, with its redaction rules):
// one JSON object per line on stderr, its time in `t`. Callers pass only
// what is safe to keep (ids, paths, codes, counts); the rules censor any
// field named for a secret, strip URLs of query and fragment, and scrub
// free text such as error messages from libraries.

export { LOG_LEVELS, type Logger, type LogLevel, type LogFields } from '@kai-sync/log'

export function createLogger(level: LogLevel = 'info', write?: (line: string) => void): Logger {
  return create(level, write, 't')
}

/** Free text with query strings, fragments and bearer credentials removed. */
export const redact = redactText
