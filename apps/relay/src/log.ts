import { toBase64Url } from '@kai-sync/crypto'

// The relay logs through @kai-sync/log (pino, with its redaction rules).
// Callers still pass no request URL or header they do not need; the rules
// are what keeps a secret out when one does.
export { createLogger, LOG_LEVELS, type Logger, type LogLevel, type LogFields } from '@kai-sync/log'

/** A device as logs name it: the first 8 characters of its public key. */
export function deviceTag(publicKey: Uint8Array | null): string {
  return publicKey ? toBase64Url(publicKey).slice(0, 8) : 'peer'
}
