import type { BrowserSyncStatus } from '@kai-sync/browser'

/** What the chip says: offline, pending, saved locally, synced. */
export function describeStatus(status: BrowserSyncStatus): { state: string; label: string; detail: string } {
  const waiting = status.held > 0 ? ` ${status.held} update${status.held === 1 ? '' : 's'} waiting for what came before them.` : ''
  if (status.offline) {
    const kept = status.state === 'pending' ? 'Saving on this device' : 'Saved on this device'
    // Online but offline: the network is fine and the relay is what cannot be reached.
    if (status.relay && (typeof navigator === 'undefined' || navigator.onLine)) {
      return { state: 'offline', label: 'Relay offline', detail: `${kept}; the relay cannot be reached, changes sync when it is back.${waiting}` }
    }
    return { state: 'offline', label: 'Offline', detail: `${kept}; changes sync when the connection is back.${waiting}` }
  }
  if (status.state === 'pending') return { state: 'pending', label: 'Saving…', detail: `Sealing and storing the latest changes.${waiting}` }
  if (status.state === 'synced') return { state: 'synced', label: 'Synced', detail: `Saved on this device and held by the relay.${waiting}` }
  const detail = status.relay ? 'Saved on this device; the relay has not confirmed it yet.' : 'Saved on this device and live in its other tabs and panels. Other devices need the relay.'
  return { state: 'saved', label: 'Saved locally', detail: detail + waiting }
}

export function SyncStatusChip({ status }: { status: BrowserSyncStatus | null }) {
  if (!status) return null
  const { state, label, detail } = describeStatus(status)
  return (
    <span class={`chip status status-${state}`} data-testid="sync-status" data-state={state} title={detail}>
      <span class="dot" aria-hidden="true" />
      {label}
    </span>
  )
}
