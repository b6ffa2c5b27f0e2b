export { createLogger, redactText, LOG_LEVELS, SECRET_FIELDS, URL_FIELDS, REDACTED, type Logger, type LogLevel, type LogFields } from './log'
