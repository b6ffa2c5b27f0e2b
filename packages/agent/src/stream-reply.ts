import { type AuditEntry, type ControlRequest, type ErrorCode, type Json, type SessionChange, type SessionDoc, type VolatileState } from '@kai-sync/model'
import { modelErrorOf } from './model-errors'

// One agent turn: a text source streamed into a reply in the session, with
// the stop, error and audit behaviour every agent on kai-sync shares.

/** Token counts, where the source reports them. */
export interface TokenUsage {
  input?: number
  output?: number
}

/** What a source factory gets: abort its model request on `signal`; report tokens if it knows them. */
export interface TurnContext {
  signal: AbortSignal
  reportUsage(usage: TokenUsage): void
}

/** An AI SDK `streamText` result, duck-typed: its `textStream`, and `usage` if it has one. */
export interface TextStreamResult {
  textStream: AsyncIterable<string>
  usage?: PromiseLike<unknown>
}

export type TextSource = AsyncIterable<string> | TextStreamResult
/** A source made for this turn, so the model request can be aborted with `signal`. */
export type SourceFactory = (turn: TurnContext) => TextSource | Promise<TextSource>

/** Where the reply is written: the session doc, and optionally the device's volatile state and its store. */
export interface ReplySession {
  doc: SessionDoc
  /** Publishes volatile state (`active_tools`, `streaming`) so every mode shows the agent replying. */
  setVolatile?(patch: Partial<VolatileState>): void | Promise<void>
  /** Resolves once local changes are sealed and stored. */
  settle?(): Promise<void>
}

export interface StreamReplyOptions {
  /** The reply's id (default: a random one). */
  id?: string
  /** The message it answers, kept in the reply's metadata as `reply_to`. */
  replyTo?: string
  timestamp?: number
  /** The model answering, for the reply's metadata and the audit entry. */
  model?: string
  /** Who answers (`metadata.agent`), e.g. "kai agent". */
  agent?: string
  metadata?: Record<string, Json>
  /** Aborting it stops the reply, as a stop request would. */
  signal?: AbortSignal
  /** The tool names shown in `active_tools` while replying (default: the agent's name). */
  activeTools?: string[]
  /** Called when a stop request for this reply arrives (before the source is aborted). */
  onStop?: (request: ControlRequest) => void
  /** How often the volatile streaming buffer is republished (default 250 ms). */
  bufferEveryMs?: number
  now?: () => number
}

export type TurnOutcome = 'complete' | 'stopped' | 'error'

export interface ReplyResult {
  id: string
  outcome: TurnOutcome
  error?: { code: string; message: string }
  audit: AuditEntry
}

/** The audit action of one agent turn. */
export const AGENT_TURN_ACTION = 'agent.turn'

/**
 * Streams `source` into a new reply and ends it: `complete` when the source
 * ends, `stopped` as soon as any device writes a stop request for it (or
 * `options.signal` aborts; the source's model request is aborted and the
 * text so far kept), `error` with a code if the source throws. Adds one
 * audit entry for the turn. Never throws for the source's failures.
 */
export async function streamReply(session: ReplySession, source: TextSource | SourceFactory, options: StreamReplyOptions = {}): Promise<ReplyResult> {
  const { doc } = session
  const now = options.now ?? Date.now
  const started = now()
  const metadata: Record<string, Json> = { ...options.metadata }
  if (options.agent !== undefined) metadata.agent = options.agent
  if (options.model !== undefined) metadata.model = options.model
  if (options.replyTo !== undefined) metadata.reply_to = options.replyTo
  const reply = doc.startStream({
    id: options.id ?? globalThis.crypto.randomUUID(),
    role: 'assistant',
    ...(options.timestamp !== undefined ? { timestamp: options.timestamp } : {}),
    metadata,
  })
  const id = reply.id

  const abort = new AbortController()
  // No reason of our own: a client that reads an error's stack (source-mapped
  // under tsx) spent 200+ ms on it, measured, and a stop must abort in 200.
  const stopped = () => abort.abort()
  const onChange = (change: SessionChange) => {
    for (const c of change.controls) {
      const request = doc.control(c)
      if (request?.kind !== 'stop' || request.message_id !== id || abort.signal.aborted) continue
      options.onStop?.(request)
      stopped()
    }
  }
  doc.on('change', onChange)
  if (options.signal?.aborted) stopped()
  options.signal?.addEventListener('abort', stopped, { once: true })

  const usage: TokenUsage = {}
  let firstToken: number | undefined
  let outcome: TurnOutcome = 'complete'
  let error: { code: ErrorCode | string; message: string } | undefined
  let text = ''
  let lastBuffer = 0
  const tools = options.activeTools ?? [options.agent ?? 'agent']
  const publish = (buffer: string) => session.setVolatile?.({ streaming: { message_id: id, buffer }, active_tools: tools })

  try {
    await publish('')
    const made = typeof source === 'function' ? await source({ signal: abort.signal, reportUsage: (u) => Object.assign(usage, u) }) : source
    const iterable = 'textStream' in made ? made.textStream : made
    if ('textStream' in made && made.usage) void Promise.resolve(made.usage).then((u) => Object.assign(usage, usageOf(u)), () => undefined)
    const iterator = iterable[Symbol.asyncIterator]()
    const aborted = new Promise<'aborted'>((resolve) => {
      if (abort.signal.aborted) resolve('aborted')
      abort.signal.addEventListener('abort', () => resolve('aborted'), { once: true })
    })
    try {
      for (;;) {
        const pending = iterator.next()
        // A source that ignores the signal may throw after the stop: not this turn's concern.
        pending.catch(() => undefined)
        const next = await Promise.race([pending, aborted])
        if (next === 'aborted') break
        if (next.done) break
        const chunk = next.value
        if (typeof chunk !== 'string' || chunk === '') continue
        firstToken ??= now()
        doc.streamText(id, chunk)
        text += chunk
        if (now() - lastBuffer >= (options.bufferEveryMs ?? 250)) {
          lastBuffer = now()
          await publish(text)
        }
      }
    } finally {
      // Ends the source without waiting for it: an async generator queues
      // `return` behind a pending `next`, which may hang until the model answers.
      if (abort.signal.aborted) void Promise.resolve(iterator.return?.()).catch(() => undefined)
    }
    if (abort.signal.aborted) outcome = 'stopped'
  } catch (e) {
    if (abort.signal.aborted) outcome = 'stopped'
    else {
      outcome = 'error'
      const failure = modelErrorOf(e)
      error = { code: failure.code, message: failure.message }
    }
  } finally {
    doc.off('change', onChange)
    options.signal?.removeEventListener('abort', stopped)
    // The request is over whichever way it ended; abort whatever is left of it.
    if (!abort.signal.aborted) abort.abort()
  }

  if (outcome === 'complete') doc.finishStream(id)
  else doc.endStream(id, outcome, error)
  const ended = now()
  const details: Record<string, Json> = { message_id: id, outcome, duration_ms: ended - started }
  if (options.replyTo !== undefined) details.reply_to = options.replyTo
  if (options.model !== undefined) details.model = options.model
  if (firstToken !== undefined) details.time_to_first_token_ms = firstToken - started
  if (usage.input !== undefined) details.tokens_in = usage.input
  if (usage.output !== undefined) details.tokens_out = usage.output
  details.chars_out = text.length
  if (error) details.error_code = error.code
  const audit = doc.appendAudit({ id: `turn-${id}`, action: AGENT_TURN_ACTION, details })
  await session.settle?.()
  // The buffer goes only once the ending is stored: a crash before it leaves a reply this device will mark interrupted.
  await session.setVolatile?.({ streaming: null, active_tools: [] })
  return { id, outcome, ...(error ? { error } : {}), audit }
}

/** Token counts from an AI SDK usage object (v5: inputTokens/outputTokens; v4: promptTokens/completionTokens). */
function usageOf(u: unknown): TokenUsage {
  const v = (u ?? {}) as Record<string, unknown>
  const out: TokenUsage = {}
  const input = v.inputTokens ?? v.promptTokens
  const output = v.outputTokens ?? v.completionTokens
  if (typeof input === 'number') out.input = input
  if (typeof output === 'number') out.output = output
  return out
}
