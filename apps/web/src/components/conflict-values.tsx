import type { ConflictInfo, Json } from '@kai-sync/model'
import { MODE_LABELS } from '../page-mode'

/** The values of one conflict, each with the device and mode it came from and when, and a button to keep it. */
export function ConflictValues({ conflict, label, disabled, onKeep, deviceName }: { conflict: ConflictInfo; label: string; disabled?: boolean; onKeep: (value: Json) => void; deviceName: (id: string) => string }) {
  return (
    <ul class="choices">
      {conflict.values.map((v) => {
        const from = `${deviceName(v.device_id)}${v.mode ? ` · ${MODE_LABELS[v.mode]}` : ''}`
        return (
          <li key={v.hlc} data-testid="conflict-value" data-device={v.device_id}>
            <code data-testid="conflict-value-text">{JSON.stringify(v.value)}</code>
            <small data-testid="conflict-value-from">
              {from} · {new Date(v.timestamp).toLocaleString()}
            </small>
            <button type="button" disabled={disabled} // The name starts with the words shown (WCAG 2.5.3), so "click Keep this" by voice works.
              aria-label={`Keep this: ${JSON.stringify(v.value)} for ${label.toLowerCase()} (from ${from})`} onClick={() => onKeep(v.value)}>
              Keep this
            </button>
          </li>
        )
      })}
    </ul>
  )
}
