import { memo } from 'preact/compat'
import { useLayoutEffect, useRef } from 'preact/hooks'
import type { Message } from '@kai-sync/model'

/** How many of the latest messages are drawn; older ones stay in the session. */
const SHOWN = 300

export function ChatHistory({ messages, version }: { messages: Message[]; version: number }) {
  const list = useRef<HTMLDivElement>(null)
  const pinned = useRef(true)
  // Follow new text while the reader is at the bottom; leave them be if they scrolled up.
  useLayoutEffect(() => {
    const el = list.current
    if (el && pinned.current) el.scrollTop = el.scrollHeight
  }, [version])
  const shown = messages.slice(-SHOWN)
  return (
    <div
      class="history"
      ref={list}
      data-testid="history"
      onScroll={(e) => {
        const el = e.currentTarget
        pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40
      }}
    >
      {messages.length === 0 && <p class="empty">No messages yet. Say something below; the demo agent will answer.</p>}
      {messages.length > SHOWN && <p class="empty">{messages.length - SHOWN} earlier messages are not shown.</p>}
      {shown.map((m) => (
        <MessageRow key={m.id} message={m} />
      ))}
    </div>
  )
}

/** How a reply that did not complete says so (the agent's reason beside an error). */
const ENDING_LABELS: Partial<Record<Message['status'], string>> = { stopped: 'Stopped', interrupted: 'Interrupted: the agent stopped mid-reply', error: 'Error' }

/** One message; redrawn only when its own object changes (see useHistory). */
const MessageRow = memo(function MessageRow({ message: m }: { message: Message }) {
  return (
    <article class={`message ${m.role}`} data-message-id={m.id} data-status={m.status}>
      <div class="bubble">
        <span class="content">{m.content}</span>
        {m.status === 'streaming' && <span class="caret" aria-label="still streaming" />}
      </div>
      {ENDING_LABELS[m.status] && (
        <p class="ending" data-ending={m.status}>
          {ENDING_LABELS[m.status]}
          {m.error && `: ${m.error.message}`}
        </p>
      )}
      <footer class="meta">
        {m.role === 'assistant' ? 'Agent' : m.role === 'user' ? 'You' : m.role}
        {m.mode && ` · from ${m.mode}`} · {new Date(m.timestamp).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}
      </footer>
    </article>
  )
})
