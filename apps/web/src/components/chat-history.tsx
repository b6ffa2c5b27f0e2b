import { memo } from './memo'
import { useLayoutEffect, useRef, useState } from 'preact/hooks'
import type { Message } from '@kai-sync/model'
import { replyAuthor } from '../answerer'

/** What a person can do to a reply from this context (none in a read-only one). */
export interface ReplyActions {
  /** Asks whoever streams the reply to stop it (a stop request, from any writer). */
  stop(m: Message): void
  /** Answers again: a retry request to the agent device, or the demo agent here. */
  retry(m: Message): void
  canRetry(m: Message): boolean
  /** A stop (or retry) request for the reply is in the session already. */
  requested(m: Message, kind: 'stop' | 'retry'): boolean
}

/**
 * How many of the latest messages are drawn at first, and how many more
 * each "load earlier" (or scrolling near the top) adds. Drawing only a
 * window keeps an append as cheap at 10,000 messages as at 100.
 */
export const PAGE = 300
/** Scrolled this close to the top, the next page of earlier messages loads. */
const NEAR_TOP = 120

export function ChatHistory({ messages, version, actions, empty }: { messages: Message[]; version: number; actions: ReplyActions | null; empty: string }) {
  const list = useRef<HTMLDivElement>(null)
  const pinned = useRef(true)
  const [count, setCount] = useState(PAGE)
  // Distance from the bottom before earlier messages were added above, so
  // what the reader was looking at stays where it was.
  const fromBottom = useRef<number | null>(null)
  const hidden = Math.max(0, messages.length - count)
  const shown = hidden > 0 ? messages.slice(hidden) : messages
  const loadEarlier = () => {
    const el = list.current
    if (!el || hidden === 0) return
    fromBottom.current = el.scrollHeight - el.scrollTop
    setCount((c) => c + PAGE)
  }
  // Follow new text while the reader is at the bottom; leave them be if they scrolled up.
  useLayoutEffect(() => {
    const el = list.current
    if (!el) return
    if (fromBottom.current !== null) {
      el.scrollTop = el.scrollHeight - fromBottom.current
      fromBottom.current = null
    } else if (pinned.current) el.scrollTop = el.scrollHeight
  }, [version, count])
  return (
    <div
      class="history"
      ref={list}
      // Focusable, so the history scrolls by keyboard even when no message holds a button (axe: scrollable-region-focusable).
      tabIndex={0}
      role="region"
      aria-label="Messages"
      data-testid="history"
      data-hidden={hidden}
      onScroll={(e) => {
        const el = e.currentTarget
        pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40
        if (el.scrollTop < NEAR_TOP && hidden > 0 && fromBottom.current === null) loadEarlier()
      }}
    >
      {messages.length === 0 && <p class="empty">No messages yet. Say something below; {empty} will answer.</p>}
      {hidden > 0 && (
        <button type="button" class="quiet load-earlier" data-testid="load-earlier" onClick={loadEarlier}>
          Load {Math.min(PAGE, hidden)} earlier messages ({hidden} not shown yet)
        </button>
      )}
      {shown.map((m) => (
        <MessageRow key={m.id} message={m} actions={actions} stopping={actions?.requested(m, 'stop') ?? false} retried={actions?.requested(m, 'retry') ?? false} />
      ))}
    </div>
  )
}

/** How a reply that did not complete says so (the agent's reason beside an error). */
const ENDING_LABELS: Partial<Record<Message['status'], string>> = { stopped: 'Stopped', interrupted: 'Interrupted: the agent stopped mid-reply', error: 'Error' }

/** One message; redrawn only when its own object (or whether a stop was asked) changes (see useHistory). */
const MessageRow = memo(function MessageRow({ message: m, actions, stopping, retried }: { message: Message; actions: ReplyActions | null; stopping: boolean; retried: boolean }) {
  const reply = m.role === 'assistant'
  return (
    <article class={`message ${m.role}`} data-message-id={m.id} data-status={m.status}>
      <div class="bubble">
        <span class="content">{m.content}</span>
        {m.status === 'streaming' && <span class="caret" aria-label="still streaming" />}
      </div>
      {ENDING_LABELS[m.status] && (
        <p class="ending" data-ending={m.status}>
          {ENDING_LABELS[m.status]}
          {m.error && (
            <>
              : <span data-error-code={m.error.code}>{m.error.message}</span> ({m.error.code})
            </>
          )}
        </p>
      )}
      {reply && actions && m.status === 'streaming' && (
        <button type="button" class="quiet reply-action" data-testid="stop-reply" disabled={stopping} onClick={() => actions.stop(m)}>
          {stopping ? 'Stopping…' : 'Stop'}
        </button>
      )}
      {reply && actions && ENDING_LABELS[m.status] && !retried && actions.canRetry(m) && (
        <button type="button" class="quiet reply-action" data-testid="retry-reply" onClick={() => actions.retry(m)}>
          Try again
        </button>
      )}
      <footer class="meta">
        {reply ? <span data-testid="reply-author">{replyAuthor(m)}</span> : m.role === 'user' ? 'You' : m.role}
        {m.mode && ` · from ${m.mode}`} · {new Date(m.timestamp).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}
      </footer>
    </article>
  )
})
