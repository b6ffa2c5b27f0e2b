import { useState } from 'preact/hooks'
import type { MemorySnapshot } from '@kai-sync/model'

/** A snapshot's data as text: a person's note as written, anything else (the agent's own) as JSON. */
function dataText(s: MemorySnapshot): string {
  const keys = Object.keys(s.data)
  if (keys.length === 1 && typeof s.data.note === 'string') return s.data.note
  return JSON.stringify(s.data, null, 2)
}

/**
 * The session's memory snapshots, newest first, each readable in full; a
 * person adds one with a summary and a note (the agent adds its own).
 */
export function MemoryList({ snapshots, readOnly, onAdd, deviceName }: { snapshots: readonly MemorySnapshot[]; readOnly: boolean; onAdd: (summary: string, note: string) => void; deviceName: (id: string) => string }) {
  const [summary, setSummary] = useState('')
  const [note, setNote] = useState('')
  const add = (e: Event) => {
    e.preventDefault()
    if (!summary.trim() && !note.trim()) return
    onAdd(summary.trim(), note)
    setSummary('')
    setNote('')
  }
  return (
    <div class="memory" data-testid="memory">
      {!readOnly && (
        <form class="memory-add" onSubmit={add} aria-label="Add a memory snapshot">
          <input type="text" data-testid="memory-summary" aria-label="Summary" placeholder="Summary" value={summary} onInput={(e) => setSummary(e.currentTarget.value)} />
          <textarea rows={3} data-testid="memory-note" aria-label="What to remember" placeholder="What the agent should remember" value={note} onInput={(e) => setNote(e.currentTarget.value)} />
          <button type="submit" class="primary" data-testid="memory-add">
            Add to memory
          </button>
        </form>
      )}
      {snapshots.length === 0 ? (
        <p class="empty">No memory snapshots yet.</p>
      ) : (
        <ol class="memory-rows" aria-label="Memory snapshots">
          {[...snapshots].reverse().map((s) => (
            <li key={s.id} data-testid="memory-row" data-id={s.id}>
              <details>
                <summary>
                  <span class="memory-summary">{s.summary || 'Snapshot'}</span>
                  <small>
                    {s.author ? deviceName(s.author) : 'the agent'} · {new Date(s.timestamp).toLocaleString()}
                  </small>
                </summary>
                <pre class="memory-data" data-testid="memory-data">{dataText(s)}</pre>
              </details>
            </li>
          ))}
        </ol>
      )}
    </div>
  )
}
