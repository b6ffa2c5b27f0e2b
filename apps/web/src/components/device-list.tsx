import { useEffect, useState } from 'preact/hooks'
import type { BrowserSession } from '@kai-sync/browser'
import { toBase64Url } from '@kai-sync/crypto'
import type { Peer } from '@kai-sync/engine'
import { MODE_LABELS } from '../page-mode'
import { errorText } from '../error-text'

// The session's devices, from its signed roster, with what presence knows
// of each (its mode and when it was last heard, while it had the session
// open), and the handoff invites not used yet. The owner may remove a
// device (a new key epoch without it; the relay then refuses it) and
// cancel an invite (its link then enrolls nobody). Any device may leave:
// the session is deleted here, and a writer or reader signs itself out.

const PENDING_ROLES = new Set(['invite_reader', 'invite_writer', 'invite_takeover'])

function useRosterVersion(session: BrowserSession): number {
  const [version, setVersion] = useState(0)
  useEffect(() => {
    const bump = () => setVersion((v) => v + 1)
    session.engine.roster.on('change', bump)
    return () => session.engine.roster.off('change', bump)
  }, [session])
  return version
}

export function DeviceList({ session, peers, onLeave }: { session: BrowserSession; peers: Peer[]; onLeave: () => Promise<void> }) {
  useRosterVersion(session)
  const [error, setError] = useState<string | null>(null)
  const [leaving, setLeaving] = useState<'asking' | 'busy' | null>(null)
  const engine = session.engine
  const self = toBase64Url(engine.device.publicKey)
  const isOwner = engine.role === 'owner'
  const members = engine.roster.list()
  const devices = members.filter((m) => !m.invite)
  const invites = members.filter((m) => m.invite && PENDING_ROLES.has(m.role))
  const act = (f: () => Promise<unknown>) => {
    setError(null)
    f().catch((e: unknown) => setError(errorText(e)))
  }
  return (
    <div class="devices" data-testid="devices">
      <ul class="device-rows">
        {devices.map((m) => {
          const id = toBase64Url(m.device)
          const seen = peers.filter((p) => p.device === id).sort((a, b) => b.updatedAt - a.updatedAt)[0]
          const mayRemove = isOwner && id !== self && m.role !== 'removed'
          return (
            <li key={id} class="device-row" data-testid="device-row" data-device={id} data-role={m.role} data-self={String(id === self)}>
              <span class="device-label">{m.label || id.slice(0, 8)}</span>
              {id === self && <span class="device-self"> (this device)</span>}
              <span class="device-meta">
                {' '}
                · {m.role}
                {seen ? ` · ${MODE_LABELS[seen.mode]} · ${seen.closing ? 'last seen' : 'open'} ${new Date(seen.updatedAt).toLocaleTimeString()}` : ' · not seen since this window opened'}
              </span>
              {mayRemove && (
                <button type="button" class="danger" data-testid="remove-device" onClick={() => act(() => engine.removeDevice(m.device))}>
                  Remove
                </button>
              )}
            </li>
          )
        })}
      </ul>
      <h3>Pending invites</h3>
      {invites.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ul class="device-rows">
          {invites.map((m) => {
            const id = toBase64Url(m.device)
            const mayCancel = isOwner || m.issuer === self
            return (
              <li key={id} class="device-row" data-testid="invite-row" data-invite={id}>
                <span class="device-label">{m.label}</span>
                {mayCancel && (
                  <button type="button" data-testid="cancel-invite" onClick={() => act(() => engine.cancelInvite(m.device))}>
                    Cancel
                  </button>
                )}
              </li>
            )
          })}
        </ul>
      )}
      {leaving === null ? (
        <button type="button" class="danger" data-testid="leave-session" onClick={() => setLeaving('asking')}>
          Leave session
        </button>
      ) : (
        <div class="leave-confirm" role="group" aria-label="Leave this session" data-testid="leave-confirm">
          <p>
            Leave this session on this device? Its messages and keys are deleted here; the other devices keep it.
            {isOwner ? ' This device owns it: it stays in the roster, and no other device can remove devices after it leaves.' : ' The others will see this device removed.'}
          </p>
          <div class="dialog-actions">
            <button
              type="button"
              class="danger"
              data-testid="confirm-leave"
              disabled={leaving === 'busy'}
              onClick={() => {
                setLeaving('busy')
                act(() => onLeave().catch((e: unknown) => {
                  setLeaving(null)
                  throw e
                }))
              }}
            >
              {leaving === 'busy' ? 'Leaving…' : 'Leave'}
            </button>
            <button type="button" disabled={leaving === 'busy'} onClick={() => setLeaving(null)}>
              Cancel
            </button>
          </div>
        </div>
      )}
      {error && (
        <p class="error" role="alert" data-testid="devices-error">
          {error}
        </p>
      )}
    </div>
  )
}
