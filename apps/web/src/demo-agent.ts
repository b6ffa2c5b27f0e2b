import type { BrowserSession } from '@kai-sync/browser'
import { equalBytes, fromBase64Url } from '@kai-sync/crypto'
import { toKaiError, type ErrorCode, type Json, type Message } from '@kai-sync/model'

// A stand-in agent that lives in the page, so the app shows a reply
// streaming in without a model behind it. A real agent (an agent device,
// `kai agent`) writes to the session from elsewhere, and a session that has
// one runs no demo agent (session-view.tsx); this one writes from the
// context that asked, and labels its replies as a demo (`metadata.demo`).
// Like the agent device it honours stop requests from any writer.

/** How the demo agent names itself on its replies (`metadata.agent`). */
export const DEMO_AGENT = 'demo agent'

const TOKEN_MS = 30
/** A prompt longer than this many words is read back in the reply: a long prompt makes a long reply. */
const READ_BACK_AFTER_WORDS = 40

/** What the demo agent needs of a session (in the app, a BrowserSession). */
export type ReplySession = Pick<BrowserSession, 'engine' | 'presence' | 'setVolatile' | 'whenSaved' | 'open'>

/** The reply to `prompt`: deterministic, so a test can check it arrived whole. */
export function demoReply(prompt: string): string {
  const words = prompt.trim().split(/\s+/).filter(Boolean)
  const opening = words.slice(0, 6).join(' ')
  return (
    `This is the demo agent built into this page. You wrote ${words.length} word${words.length === 1 ? '' : 's'}` +
    `${opening ? `, starting with “${opening}${words.length > 6 ? '…' : ''}”` : ''}. ` +
    'Each piece of this reply is sealed, stored as ciphertext in IndexedDB and streamed live to every tab, popup and side panel with this session open.' +
    (words.length > READ_BACK_AFTER_WORDS ? ` That was a long message, so here it is read back, word by word: ${words.join(' ')}` : '')
  )
}

/** The pieces a reply streams in, one per TOKEN_MS: a word and the space after it. */
export function replyTokens(text: string): string[] {
  return text.match(/\S+\s*/g) ?? []
}

/**
 * How a stream ended. `handed_on`: this device may no longer write (a
 * takeover moved the session away; its successor continues the reply).
 * `stopped`: a writer asked to stop it (a stop request in the session); it
 * ends `stopped` with its text so far.
 * `closed`: this context closed; the reply stays claimed at rest, so the
 * next context opened finishes it. `gone`: the message was finished or
 * removed elsewhere. `failed`: a write threw for another reason (`code`).
 * `running`: this context is streaming it already.
 */
export type StreamOutcome = { outcome: 'finished' | 'stopped' | 'handed_on' | 'closed' | 'gone' | 'running' } | { outcome: 'failed'; code: ErrorCode }

const running = new WeakMap<ReplySession, Set<string>>()

/**
 * Streams `text` into message `id`, from where its content already is.
 * The whole intended reply is kept as the volatile streaming buffer, so a
 * context opened after this one closed (a reload, the side panel after the
 * popup) finishes it: `resumeStream`. Whatever stops it, the claim on the
 * reply is dropped (but for a close, which must leave it for the next
 * context), so nothing shows "replying" for ever.
 */
export async function streamInto(session: ReplySession, id: string, text: string): Promise<StreamOutcome> {
  const { engine } = session
  if (!engine.canWrite) return { outcome: 'handed_on' }
  const active = running.get(session) ?? new Set<string>()
  running.set(session, active)
  if (active.has(id)) return { outcome: 'running' }
  active.add(id)
  const doc = engine.session
  // The 'moved' event comes before the step-down is signed: stop there, so
  // every token written is sealed ahead of it and reaches the successor.
  let movedAway = false
  const onMoved = (_to: unknown, from: Uint8Array) => {
    if (equalBytes(from, engine.device.publicKey)) movedAway = true
  }
  engine.on('moved', onMoved)
  const stopped = (): StreamOutcome | null =>
    !session.open ? { outcome: 'closed' } : movedAway || !engine.canWrite ? { outcome: 'handed_on' } : null
  try {
    await session.setVolatile({ streaming: { message_id: id, buffer: text }, active_tools: ['demo-agent'] })
    for (const token of replyTokens(text.slice(doc.message(id)?.content.length ?? 0))) {
      await new Promise((r) => setTimeout(r, TOKEN_MS))
      const stop = stopped()
      if (stop) return await settle(session, id, stop)
      const message = doc.message(id)
      if (!message || message.status === 'complete') return await settle(session, id, { outcome: 'gone' })
      if (stopRequested(session, id)) {
        doc.endStream(id, 'stopped')
        await session.whenSaved()
        return await settle(session, id, { outcome: 'stopped' })
      }
      doc.streamText(id, token)
    }
    if (doc.message(id)) doc.finishStream(id)
    // The buffer is what lets a reopened context finish the reply: drop it
    // only once the finished reply is sealed and stored, or a reload in
    // between leaves a reply "streaming" that nobody will ever finish.
    await session.whenSaved()
    return await settle(session, id, { outcome: 'finished' })
  } catch (e) {
    const stop = stopped() ?? { outcome: 'failed', code: toKaiError(e).code }
    if (stop.outcome === 'failed') console.warn(`the demo agent stopped replying (${stop.code}):`, e)
    return await settle(session, id, stop)
  } finally {
    engine.off('moved', onMoved)
    active.delete(id)
  }
}

/** Drops this context's claim on reply `id` (unless it closed: then the claim at rest is what finishes it). */
async function settle(session: ReplySession, id: string, result: StreamOutcome): Promise<StreamOutcome> {
  if (result.outcome !== 'closed' && session.presence.state.volatile.streaming?.message_id === id) {
    await session.setVolatile({ streaming: null, active_tools: [] }).catch(() => undefined)
  }
  return result
}

/** Any writer asked to stop reply `id`. */
function stopRequested(session: ReplySession, id: string): boolean {
  return session.engine.session.controlsFor(id).some((c) => c.kind === 'stop')
}

/**
 * Answers `prompt` (the user message `opts.replyTo`, kept as the reply's
 * `reply_to`; `retryOf`: the reply this one answers again).
 */
export async function replyTo(session: ReplySession, prompt: string, opts: { replyTo?: string; retryOf?: string } = {}): Promise<StreamOutcome> {
  const metadata: Record<string, Json> = { agent: DEMO_AGENT, demo: true }
  if (opts.replyTo) metadata.reply_to = opts.replyTo
  if (opts.retryOf) metadata.retry_of = opts.retryOf
  const reply = session.engine.session.startStream({ id: `r-${crypto.randomUUID()}`, role: 'assistant', metadata })
  return streamInto(session, reply.id, demoReply(prompt))
}

/** "Try again" on a demo reply that did not complete: the demo answers the same message again, in a new reply. */
export function retryDemo(session: ReplySession, reply: Message): Promise<StreamOutcome> {
  const asked = typeof reply.metadata?.reply_to === 'string' ? session.engine.session.message(reply.metadata.reply_to) : undefined
  return replyTo(session, asked?.content ?? '', { ...(asked ? { replyTo: asked.id } : {}), retryOf: reply.id })
}

/** How long a reply must stand still, unclaimed, before this context finishes it. */
const RESUME_AFTER_MS = 400
/** How long to wait for the device this one took the session over from to step down, if it never does (it crashed). */
const STEP_DOWN_WAIT_MS = 10_000
const CHECK_EVERY_MS = 100

/**
 * Finishes a reply this context holds the claim of (its own from before a
 * reload, or one a handoff brought) once nobody else is on it: no other
 * context of a device that may write claims it, the device this one took
 * the session over from has stepped down (everything it wrote arrives
 * before its step-down), and the reply stood still a moment. It keeps
 * watching until then, so a source that lets go later is still followed.
 */
export function resumeStream(session: ReplySession): () => void {
  const doc = session.engine.session
  let seen: string | undefined
  let stillSince = Date.now()
  const watchedSince = Date.now()
  const check = () => {
    const streaming = session.presence.state.volatile.streaming
    if (!streaming || !session.engine.canWrite) return stop()
    const message = doc.message(streaming.message_id)
    if (!message || message.status === 'complete' || !streaming.buffer.startsWith(message.content)) {
      void session.setVolatile({ streaming: null, active_tools: [] })
      return stop()
    }
    const now = Date.now()
    if (message.content !== seen || claimedElsewhere(session, streaming.message_id)) {
      seen = message.content
      stillSince = now
      return
    }
    if (now - stillSince < RESUME_AFTER_MS) return
    if (predecessorWrites(session) && now - watchedSince < STEP_DOWN_WAIT_MS) return
    stop()
    void streamInto(session, streaming.message_id, streaming.buffer)
  }
  const timer = setInterval(check, CHECK_EVERY_MS)
  const stop = () => clearInterval(timer)
  check()
  return stop
}

/** Another live context claims reply `id`, and its device may still write it. */
function claimedElsewhere(session: ReplySession, id: string): boolean {
  return session.presence
    .peers()
    .some((p) => !p.self && !p.closing && p.volatile.streaming?.message_id === id && (p.role === 'owner' || p.role === 'writer'))
}

/** This device took the session over from one that has not stepped down yet. */
function predecessorWrites(session: ReplySession): boolean {
  const { roster, device } = session.engine
  const via = roster.member(device.publicKey)?.via
  if (via?.transfer !== 'takeover') return false
  const role = roster.roleOf(fromBase64Url(via.inviteIssuer)!)
  return role === 'owner' || role === 'writer'
}

/**
 * A context of this device closed mid-reply (the popup, say): one of the
 * device's contexts still open, the same one in each, takes the reply over.
 */
export function adoptOrphanedStreams(session: ReplySession): void {
  const peers = session.presence.peers()
  const self = peers[0]!
  const live = peers.filter((p) => p.device === self.device && !p.closing).map((p) => p.clientId)
  if (Math.min(...live) !== self.clientId) return
  for (const peer of peers) {
    const s = peer.volatile.streaming
    if (!peer.closing || peer.device !== self.device || !s) continue
    const message = session.engine.session.message(s.message_id)
    if (message?.status === 'streaming' && s.buffer.startsWith(message.content)) void streamInto(session, s.message_id, s.buffer)
  }
}
