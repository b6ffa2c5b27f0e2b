import type { SessionListItem } from '../session-hooks'

function ago(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  if (s < 60) return 'just now'
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`
  return new Date(ms).toLocaleDateString()
}

export function SessionList({ items, current, onSelect, onNew }: { items: SessionListItem[]; current: string | null; onSelect: (id: string) => void; onNew: () => void }) {
  return (
    <nav class="sessions" aria-label="Sessions" data-testid="session-list">
      <button type="button" class="primary new" data-testid="new-session" onClick={onNew}>
        + New session
      </button>
      <ul>
        {items.map(({ entry, title }) => (
          <li key={entry.sessionId}>
            <button
              type="button"
              class={entry.sessionId === current ? 'current' : ''}
              aria-current={entry.sessionId === current ? 'page' : undefined}
              data-session-id={entry.sessionId}
              onClick={() => onSelect(entry.sessionId)}
            >
              <span class="title">{title ?? 'New session'}</span>
              <small>{ago(entry.touchedAt)}</small>
            </button>
          </li>
        ))}
      </ul>
      {items.length === 0 && <p class="empty">No sessions on this device yet.</p>}
    </nav>
  )
}
