import { KaiError } from '@kai-sync/model'

// What a model request's failure is, as a stable code a reply shows. Works
// on the errors of the `openai` package (`status`, APIConnectionError) and
// of the AI SDK (`statusCode`) by their shape, so neither is a dependency.
// The endpoint's own words are not kept for auth failures: some echo a
// part of the key.

const UNREACHABLE = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|connection error|fetch failed/i

export function modelErrorOf(e: unknown): KaiError {
  if (e instanceof KaiError) return e
  const err = (e ?? {}) as { status?: unknown; statusCode?: unknown; name?: unknown; message?: unknown; cause?: unknown }
  const status = typeof err.status === 'number' ? err.status : typeof err.statusCode === 'number' ? err.statusCode : undefined
  if (status === 401 || status === 403) return new KaiError('model_unauthorized', `the model endpoint refused the API key (HTTP ${status}); check OPENAI_API_KEY`)
  if (status === 429) return new KaiError('model_rate_limited', 'the model endpoint is rate limiting (HTTP 429); ask the agent to try again later')
  const message = typeof err.message === 'string' ? err.message : String(e)
  if (status !== undefined) return new KaiError('model_error', `the model endpoint answered HTTP ${status}: ${message.slice(0, 200)}`)
  const cause = (err.cause ?? {}) as { code?: unknown; message?: unknown }
  if (err.name === 'APIConnectionError' || UNREACHABLE.test(`${message} ${String(cause.code ?? '')} ${String(cause.message ?? '')}`)) {
    return new KaiError('model_unreachable', 'the model endpoint could not be reached; check OPENAI_BASE_URL and that the server runs')
  }
  return new KaiError('model_error', message.slice(0, 200) || 'the model request failed')
}
