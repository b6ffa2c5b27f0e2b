import { useState } from 'preact/hooks'
import type { AuditEntry } from '@kai-sync/model'
import { MODE_LABELS } from '../page-mode'

/** What an entry's details say, briefly: the field and value of a settings change, say. */
function summary(e: AuditEntry): string {
  if (!e.details) return ''
  return Object.entries(e.details)
    .map(([k, v]) => `${k} ${JSON.stringify(v)}`)
    .join(', ')
    .slice(0, 160)
}

/**
 * The session's audit log, newest first: who did what, from which device
 * and mode, when. Live (redrawn with the session), and filterable by device.
 */
export function AuditLog({ entries, deviceName }: { entries: readonly AuditEntry[]; deviceName: (id: string) => string }) {
  const [device, setDevice] = useState('')
  const devices = [...new Set(entries.map((e) => e.actor))]
  const shown = entries.filter((e) => !device || e.actor === device).reverse()
  return (
    <div class="audit" data-testid="audit-log">
      <label class="field audit-filter" for="audit-device">
        <span class="field-label">Device</span>
        <select id="audit-device" data-testid="audit-device" value={device} onChange={(e) => setDevice(e.currentTarget.value)}>
          <option value="">All devices</option>
          {devices.map((id) => (
            <option key={id} value={id}>
              {deviceName(id)}
            </option>
          ))}
        </select>
      </label>
      {shown.length === 0 ? (
        <p class="empty">Nothing recorded yet. Settings changes, handoffs and memory snapshots appear here.</p>
      ) : (
        <ol class="audit-rows" aria-label="Audit log">
          {shown.map((e) => (
            <li key={e.id} class="audit-row" data-testid="audit-row" data-actor={e.actor} data-mode={e.mode} data-action={e.action}>
              <span class="audit-action">{e.action}</span>
              {summary(e) && <span class="audit-details">{summary(e)}</span>}
              <small class="audit-meta">
                {deviceName(e.actor)} · {MODE_LABELS[e.mode]} · <time dateTime={new Date(e.timestamp).toISOString()}>{new Date(e.timestamp).toLocaleString()}</time>
              </small>
            </li>
          ))}
        </ol>
      )}
    </div>
  )
}
