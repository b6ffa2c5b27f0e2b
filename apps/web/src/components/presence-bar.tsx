import type { Peer } from '@kai-sync/engine'
import { MODE_LABELS } from '../page-mode'

/** Who has this session open right now: this context first, a closing one greyed. */
export function PresenceBar({ peers }: { peers: Peer[] }) {
  const self = peers[0]
  if (!self) return null
  return (
    <ul class="presence" data-testid="presence" aria-label="Open in">
      {peers.map((p) => {
        const where = p.self ? 'this window' : p.device === self.device ? 'this device' : `device ${p.device.slice(0, 6)}`
        const remote = p.device !== self.device
        const state = p.closing ? 'closed' : p.volatile.streaming ? 'replying' : p.volatile.ui_state.draft ? 'typing' : remote && p.role === 'reader' ? 'reading' : ''
        // What it is working with while it replies (an agent's model, a tool it runs).
        const tools = p.closing ? '' : p.volatile.active_tools.join(', ')
        return (
          <li
            key={p.clientId}
            class={`peer${p.closing ? ' closing' : ''}${p.self ? ' self' : ''}${remote ? ' remote' : ''}`}
            data-mode={p.mode}
            data-closing={String(p.closing)}
            data-self={String(p.self)}
            data-remote={String(remote)}
            title={`${p.label} · ${where}${p.role ? ` · ${p.role}` : ''}${p.closing ? ' · closed' : ''}`}
          >
            <span class="peer-dot" aria-hidden="true" />
            {/* Another device goes by its own name ("Extension tab", "Pixel 8"); this one's contexts by their mode. */}
            <span class="peer-name">{p.self ? 'You' : remote ? p.label || MODE_LABELS[p.mode] : MODE_LABELS[p.mode]}</span>
            {state && <span class="peer-state">{state}</span>}
            {tools && <span class="peer-tools">{tools}</span>}
          </li>
        )
      })}
    </ul>
  )
}
