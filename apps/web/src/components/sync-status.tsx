import { useState } from 'preact/hooks'
import type { BrowserSyncStatus } from '@kai-sync/browser'
import type { CountsByCode } from '@kai-sync/engine'

// What each code a held or refused envelope carries means, in a person's words.
const REASONS: Record<string, string> = {
  gap: 'waiting for an earlier change from the same device',
  wrong_epoch: 'waiting for a key this device has not received yet',
  unknown_signer: 'waiting for the device that wrote them to appear in the member list',
  bad_signature: 'their signature did not verify',
  unauthorized_signer: 'written by a device that may not write here',
  malformed: 'not readable',
  decrypt_failed: 'they could not be decrypted',
}

function counted(n: number, counts: CountsByCode, verb: string): string {
  if (n === 0) return ''
  const reasons = Object.entries(counts)
    .filter(([, c]) => c)
    // The code too: it is what a report or the daemon's API names.
    .map(([code, c]) => `${c} ${REASONS[code] ? `${REASONS[code]} (${code})` : code}`)
  return ` ${n} update${n === 1 ? '' : 's'} ${verb}: ${reasons.join('; ')}.`
}

/** What the chip says: offline, pending, saved locally, synced; and what is held back or refused. */
export function describeStatus(status: BrowserSyncStatus): { state: string; label: string; detail: string } {
  const waiting = counted(status.held, status.heldBy ?? {}, 'held back') + counted(status.refused ?? 0, status.refusedBy ?? {}, 'refused')
  // The relay's own words: a removed device is told so (4403) and is not let back in.
  const refusal = status.relayRefusal
  if (refusal) {
    const removed = refusal.code === 4403
    return {
      state: 'refused',
      label: removed ? 'Not allowed' : 'Relay refused',
      detail: `The relay refused this device (${refusal.code}: ${refusal.reason || 'no reason given'}). What is on this device stays readable here; nothing new arrives.${waiting}`,
    }
  }
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
  if (status.held > 0) return { state: 'saved', label: `Saved · ${status.held} held`, detail: `Saved on this device, but not everything other devices wrote can be shown yet.${waiting}` }
  const detail = status.relay ? 'Saved on this device; the relay has not confirmed it yet.' : 'Saved on this device and live in its other tabs and panels. Other devices need the relay.'
  return { state: 'saved', label: 'Saved locally', detail: detail + waiting }
}

/** The chip; a tap (or Enter) shows its explanation, which hover alone would hide from touch screens. */
export function SyncStatusChip({ status }: { status: BrowserSyncStatus | null }) {
  const [open, setOpen] = useState(false)
  if (!status) return null
  const { state, label, detail } = describeStatus(status)
  return (
    <span class="status-wrap">
      <button
        type="button"
        class="status-button"
        data-testid="sync-status"
        data-state={state}
        title={detail}
        aria-expanded={open}
        aria-controls="sync-detail"
        onClick={() => setOpen(!open)}
      >
        {/* The pill stays small; the button around it is the 44 px a finger needs. */}
        <span class={`chip status status-${state}`}>
          <span class="dot" aria-hidden="true" />
          {label}
        </span>
      </button>
      {open && (
        <span id="sync-detail" class="status-detail" role="status" data-testid="sync-detail">
          {detail}
        </span>
      )}
    </span>
  )
}
