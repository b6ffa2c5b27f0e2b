import type { BrowserSession } from '@kai-sync/browser'

// A stand-in agent that lives in the page, so the app shows a reply
// streaming in without a model behind it. A real agent writes to the
// session from the daemon; this one writes from the context that asked.

const TOKEN_MS = 30

/** The reply to `prompt`: deterministic, so a test can check it arrived whole. */
export function demoReply(prompt: string): string {
  const words = prompt.trim().split(/\s+/).filter(Boolean)
  const opening = words.slice(0, 6).join(' ')
  return (
    `This is the demo agent built into this page. You wrote ${words.length} word${words.length === 1 ? '' : 's'}` +
    `${opening ? `, starting with “${opening}${words.length > 6 ? '…' : ''}”` : ''}. ` +
    'Each piece of this reply is sealed, stored as ciphertext in IndexedDB and streamed live to every tab, popup and side panel with this session open.'
  )
}

function tokens(text: string): string[] {
  return text.match(/\S+\s*/g) ?? []
}

const running = new WeakMap<BrowserSession, Set<string>>()

/**
 * Streams `text` into message `id`, from where its content already is.
 * The whole intended reply is kept as the volatile streaming buffer, so a
 * context opened after this one closed (a reload, the side panel after the
 * popup) finishes it: `resumeStream`.
 */
export async function streamInto(session: BrowserSession, id: string, text: string): Promise<void> {
  const active = running.get(session) ?? new Set<string>()
  running.set(session, active)
  if (active.has(id)) return
  active.add(id)
  const doc = session.engine.session
  try {
    await session.setVolatile({ streaming: { message_id: id, buffer: text }, active_tools: ['demo-agent'] })
    for (const token of tokens(text.slice(doc.message(id)?.content.length ?? 0))) {
      await new Promise((r) => setTimeout(r, TOKEN_MS))
      const message = doc.message(id)
      if (!message || message.status === 'complete') break
      doc.streamText(id, token)
    }
    if (doc.message(id)) doc.finishStream(id)
    // The buffer is what lets a reopened context finish the reply: drop it
    // only once the finished reply is sealed and stored, or a reload in
    // between leaves a reply "streaming" that nobody will ever finish.
    await session.whenSaved()
    await session.setVolatile({ streaming: null, active_tools: [] })
  } finally {
    active.delete(id)
  }
}

export async function replyTo(session: BrowserSession, prompt: string): Promise<void> {
  const reply = session.engine.session.startStream({ id: `r-${crypto.randomUUID()}`, role: 'assistant' })
  await streamInto(session, reply.id, demoReply(prompt))
}

/** How long a newly opened context watches before finishing a reply itself. */
const RESUME_AFTER_MS = 400

/**
 * Finishes a reply this device was streaming when its context went away
 * (a reload, the popup closed). A context that is still streaming it may
 * not be in this one's presence yet, just after opening; so wait a moment
 * and resume only if nobody is on it and the reply has not moved.
 */
export function resumeStream(session: BrowserSession): () => void {
  const streaming = session.presence.state.volatile.streaming
  if (!streaming) return () => undefined
  const doc = session.engine.session
  const before = doc.message(streaming.message_id)?.content
  const timer = setTimeout(() => {
    const message = doc.message(streaming.message_id)
    const takenUp = session.presence.peers().some((p) => !p.self && !p.closing && p.volatile.streaming?.message_id === streaming.message_id)
    if (!message || message.status === 'complete' || !streaming.buffer.startsWith(message.content)) {
      void session.setVolatile({ streaming: null, active_tools: [] })
    } else if (!takenUp && message.content === before) {
      void streamInto(session, streaming.message_id, streaming.buffer)
    }
  }, RESUME_AFTER_MS)
  return () => clearTimeout(timer)
}

/**
 * A context of this device closed mid-reply (the popup, say): one of the
 * device's contexts still open, the same one in each, takes the reply over.
 */
export function adoptOrphanedStreams(session: BrowserSession): void {
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
