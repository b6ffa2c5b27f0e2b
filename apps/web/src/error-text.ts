import { ERROR_CODES, toKaiError, type ErrorCode } from '@kai-sync/model'

// The one place a KaiError becomes words on screen: what happened (the
// error's own detail, without its code) and what the person can do. The
// code stays on the element (data-code) for reports and tests, never in
// the sentence: "already_used: already_used: …" helps nobody.

const WHAT_TO_DO: Partial<Record<ErrorCode, string>> = {
  malformed: 'Check that the link or file is complete, or make a new one on your other device.',
  unsupported_version: 'Update kai-sync on this device, then try again.',
  bad_signature: 'Make a new link on your other device and open that one.',
  unknown_signer: 'Ask the session’s owner to add this device, then try again.',
  unauthorized_signer: 'Ask the session’s owner for a role that may do this.',
  wrong_session: 'Open the link that was made for this session.',
  decrypt_failed: 'Make a new link on your other device and open that one.',
  invalid_input: 'Check what you entered and try again.',
  unauthenticated: 'Open the session again from your other device.',
  forbidden: 'Make a new link on your other device and open that one.',
  expired: 'Make a new link on your other device and open it within its time.',
  already_used: 'Each link works once: make a new one on your other device.',
  not_found: 'Open it from the device that has it, or through a new handoff link.',
  too_large: 'Try again with less.',
  rate_limited: 'Wait a minute, then try again.',
  conflict: 'Try again: something changed at the same time.',
  unavailable: 'Check the connection and the relay address, then try again.',
  internal: 'Try again; if it keeps happening, reload the page.',
}

/** A thrown error as a person reads it: what happened, then what to do; no codes. */
export function errorText(e: unknown): string {
  const error = toKaiError(e)
  let detail = error.message
  // Strip every leading "code: " (an error passed on twice carries it twice).
  for (let m = /^([a-z_]+): /.exec(detail); m && m[1]! in ERROR_CODES; m = /^([a-z_]+): /.exec(detail)) detail = detail.slice(m[0].length)
  detail = (detail || ERROR_CODES[error.code]).trim().replace(/[.;:]+$/, '')
  const what = `${detail.charAt(0).toUpperCase()}${detail.slice(1)}.`
  const todo = WHAT_TO_DO[error.code]
  return todo ? `${what} ${todo}` : what
}
