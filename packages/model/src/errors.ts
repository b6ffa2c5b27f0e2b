// One error class for the whole project, with a stable code a program can
// branch on and a message a person can act on. Codes are never renamed.

export const ERROR_CODES = {
  // Bytes that do not decode as what they claim to be.
  malformed: 'the bytes do not decode; they are truncated, padded or not a kai-sync object',
  unsupported_version: 'made by a newer kai-sync; upgrade this device',
  // Envelopes and roster entries.
  bad_signature: 'the signature does not verify: the bytes were changed or forged',
  unknown_signer: 'the signing device is not in this session\'s roster',
  unauthorized_signer: 'the signing device is in the roster but its role may not do this',
  wrong_session: 'signed for another session',
  wrong_epoch: 'sealed under a key epoch this device holds no key for',
  stale_epoch: 'sealed under a key epoch after a newer one had started (a device was removed); its writer re-seals it',
  decrypt_failed: 'the ciphertext or its header was changed, or the key is wrong',
  replay: 'already received: an old envelope sent again',
  gap: 'an earlier envelope of the same stream, or an item the update refers to, is missing',
  fork: 'the stream already has a different envelope at this position',
  equivocation: 'the device signed two envelopes at one position of its stream; the stream is frozen there',
  stream_not_owned: 'the envelope continues a stream another device opened',
  client_id_not_owned: 'the update writes as a Yjs client the signer does not own',
  own_gap: 'envelopes this device signed are held for a gap in their own stream; their content is re-sealed in a snapshot',
  over_claim: 'a snapshot\'s covers claim stream positions whose content its state does not hold; a replica that holds it re-publishes it in a snapshot',
  forged_author: 'the update names another device than its signer as author, actor or writer',
  audit_rewrite: 'the update changes or deletes an audit entry; audit entries are only ever added',
  // Requests and tokens.
  invalid_input: 'the input does not match the expected shape',
  unauthenticated: 'no valid credentials were presented',
  forbidden: 'the credentials do not allow this',
  expired: 'the token or capability has expired',
  already_used: 'the token was already used',
  not_found: 'no such thing here',
  too_large: 'larger than the limit',
  rate_limited: 'too many requests; slow down',
  conflict: 'the operation conflicts with the current state',
  unavailable: 'a service this needs is not reachable right now',
  internal: 'an unexpected failure; it has been logged',
  // An agent's model, as a reply's error shows it.
  model_unreachable: 'the model endpoint could not be reached (OPENAI_BASE_URL)',
  model_unauthorized: 'the model endpoint refused the API key (OPENAI_API_KEY)',
  model_rate_limited: 'the model endpoint is rate limiting; try again later',
  model_stream_cut: 'the model\'s stream ended before the reply was finished',
  model_error: 'the model endpoint answered with an error',
} as const

export type ErrorCode = keyof typeof ERROR_CODES

/** The HTTP status an error answers with, for the relay's and the daemon's APIs. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  malformed: 400,
  unsupported_version: 400,
  bad_signature: 401,
  unknown_signer: 403,
  unauthorized_signer: 403,
  wrong_session: 400,
  wrong_epoch: 400,
  stale_epoch: 409,
  decrypt_failed: 400,
  replay: 409,
  gap: 409,
  fork: 409,
  equivocation: 409,
  stream_not_owned: 403,
  client_id_not_owned: 403,
  own_gap: 500,
  over_claim: 409,
  forged_author: 403,
  audit_rewrite: 403,
  invalid_input: 400,
  unauthenticated: 401,
  forbidden: 403,
  expired: 410,
  already_used: 409,
  not_found: 404,
  too_large: 413,
  rate_limited: 429,
  conflict: 409,
  unavailable: 503,
  internal: 500,
  model_unreachable: 502,
  model_unauthorized: 502,
  model_rate_limited: 429,
  model_stream_cut: 502,
  model_error: 502,
}

export class KaiError extends Error {
  override readonly name = 'KaiError'

  constructor(
    readonly code: ErrorCode,
    detail?: string,
    options?: { cause?: unknown },
  ) {
    super(detail ? `${code}: ${detail}` : `${code}: ${ERROR_CODES[code]}`, options)
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message }
  }

  /**
   * The error another process answered with (its `toJSON()`), as one here:
   * the message already starts with the code, so it is not prefixed again.
   * An unknown code becomes `internal`.
   */
  static fromJSON(json: { code?: unknown; message?: unknown } | null | undefined, fallback: string): KaiError {
    const code = typeof json?.code === 'string' && json.code in ERROR_CODES ? (json.code as ErrorCode) : 'internal'
    const message = typeof json?.message === 'string' ? json.message : ''
    // Strip every leading "code: " so an error relayed twice still names its code once.
    let detail = message
    while (/^[a-z_]+: /.test(detail) && detail.slice(0, detail.indexOf(':')) in ERROR_CODES) detail = detail.slice(detail.indexOf(':') + 2)
    return new KaiError(code, detail || fallback)
  }
}

export function isKaiError(e: unknown, code?: ErrorCode): e is KaiError {
  return e instanceof KaiError && (code === undefined || e.code === code)
}

/** Whatever was thrown, as a KaiError (unknown failures become `internal`). */
export function toKaiError(e: unknown): KaiError {
  if (e instanceof KaiError) return e
  return new KaiError('internal', e instanceof Error ? e.message : String(e), { cause: e })
}
