import { TRANSFER_TYPES } from '@kai-sync/model'

const TRANSFER_HELP: Record<(typeof TRANSFER_TYPES)[number], string> = {
  takeover: 'Continue there; this window steps down.',
  mirror: 'Both keep writing.',
  observe: 'The other device only reads.',
}

/**
 * The handoff: a QR code of a resume link whose fragment carries what the
 * relay must never see (issue 5). It needs the relay, which this build does
 * not connect yet, so the dialog says so instead of showing a code.
 */
export function HandoffDialog({ onClose }: { onClose: () => void }) {
  return (
    <div class="backdrop" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="handoff-title" data-testid="handoff-dialog">
        <h2 id="handoff-title">Continue on another device</h2>
        <div class="qr-placeholder" aria-hidden="true">QR</div>
        <ul class="choices">
          {TRANSFER_TYPES.map((t) => (
            <li key={t}>
              <button type="button" disabled>
                {t[0]!.toUpperCase() + t.slice(1)}
              </button>
              <small>{TRANSFER_HELP[t]}</small>
            </li>
          ))}
        </ul>
        <p class="notice">Handing a session to another device goes through the relay, which is not connected in this build yet. Tabs, the popup and the side panel of this browser already share it live.</p>
        <button type="button" class="primary" onClick={onClose}>
          Close
        </button>
      </div>
    </div>
  )
}

/** Where a handoff link lands (`#/resume/…`). Accepting it needs the relay and the handoff. */
export function ResumePage({ onHome }: { onHome: () => void }) {
  return (
    <main class="resume" data-testid="resume-page">
      <h1>Resume a session</h1>
      <p>This link continues a session from another device. Opening it here needs the relay, which this build does not connect yet; the link has not been used and stays valid until it expires.</p>
      <button type="button" class="primary" onClick={onHome}>
        Go to my sessions
      </button>
    </main>
  )
}
