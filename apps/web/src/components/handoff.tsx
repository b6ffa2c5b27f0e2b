import { useEffect, useState } from 'preact/hooks'
import type { BrowserDevice, BrowserSession } from '@kai-sync/browser'
import { acceptHandoffInBrowser, handOffFromBrowser, resumeLinkRelay, type InitiatedHandoff } from '@kai-sync/browser/handoff'
import { TRANSFER_TYPES, type Mode, type TransferType, type VolatileState } from '@kai-sync/model'
import { errorText } from '../error-text'
import { Modal } from './modal'
import { APP_URL_IS_SET, isAppUrl, isRelayUrl, originOf, saveLinkSettings, type LinkSettings } from '../link-settings'

const TRANSFER_LABEL: Record<TransferType, string> = { takeover: 'Take over', mirror: 'Mirror', observe: 'Observe' }
const TRANSFER_HELP: Record<TransferType, string> = {
  takeover: 'Continue there; this window steps down to reading.',
  mirror: 'Both keep writing.',
  observe: 'The other device only reads.',
}
const TARGETS: Array<{ mode: Mode; label: string; how: string }> = [
  { mode: 'mobile', label: 'Phone', how: 'Scan this code with your phone\'s camera and open the link.' },
  { mode: 'tab', label: 'Browser', how: 'Open the link in the other browser.' },
  { mode: 'desktop', label: 'Desktop app', how: 'Open the link on your computer, in the installed kai-sync app or its browser.' },
]
const TRANSFER_AFTER: Record<TransferType, string> = {
  takeover: 'The session continues there, and this window becomes read-only.',
  mirror: 'Both devices can then write.',
  observe: 'That device can then follow the session, not write to it.',
}

/**
 * The handoff: pick how, get a QR code of a resume link whose fragment
 * carries what the relay must never see. Without a relay address it asks
 * for one first: the relay is how the other device reaches the session.
 */
export function HandoffDialog({ session, settings, label, onClose }: { session: BrowserSession; settings: LinkSettings; label: string; onClose: () => void }) {
  const [target, setTarget] = useState<Mode>('mobile')
  const [busy, setBusy] = useState<TransferType | null>(null)
  const [made, setMade] = useState<{ handoff: InitiatedHandoff; how: string } | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [editing, setEditing] = useState(settings.relayUrl === null)
  const canWrite = session.engine.canWrite

  const start = async (transfer: TransferType) => {
    if (!settings.relayUrl) return
    setBusy(transfer)
    setError(null)
    try {
      const handoff = await handOffFromBrowser(session, { transfer, targetMode: target, appUrl: settings.appUrl, relayUrl: settings.relayUrl, label })
      setMade({ handoff, how: `${TARGETS.find((t) => t.mode === target)!.how} ${TRANSFER_AFTER[transfer]}` })
    } catch (e) {
      setError(errorText(e))
    } finally {
      setBusy(null)
    }
  }

  return (
    <Modal class="handoff-dialog" labelledBy="handoff-title" testId="handoff-dialog" onClose={onClose} closeOnBackdrop>
      <h2 id="handoff-title">Continue on another device</h2>
      {editing || !settings.relayUrl ? (
        <RelaySettings settings={settings} onSaved={() => setEditing(false)} />
      ) : made ? (
        <HandoffCode made={made.handoff} how={made.how} onAgain={() => setMade(null)} />
      ) : (
        <>
          <div class="segmented" role="radiogroup" aria-label="Open it on">
            {TARGETS.map((t) => (
              <button key={t.mode} type="button" role="radio" aria-checked={target === t.mode} class={target === t.mode ? 'on' : ''} onClick={() => setTarget(t.mode)}>
                {t.label}
              </button>
            ))}
          </div>
          <ul class="choices">
            {TRANSFER_TYPES.map((t) => (
              <li key={t}>
                <button type="button" data-testid={`handoff-${t}`} disabled={!canWrite || busy !== null} onClick={() => void start(t)}>
                  {busy === t ? 'Preparing…' : TRANSFER_LABEL[t]}
                </button>
                <small>{TRANSFER_HELP[t]}</small>
              </li>
            ))}
          </ul>
          {!canWrite && <p class="notice">This device may only read this session, so it cannot hand it on.</p>}
          <p class="relay-line">
            Through <code>{settings.relayUrl}</code>; opens on <code>{originOf(settings.appUrl)}</code>{' '}
            <button type="button" class="link" data-testid="edit-relay" onClick={() => setEditing(true)}>
              Change
            </button>
          </p>
        </>
      )}
      {error && (
        <p class="field-error" role="alert" data-testid="handoff-error">
          {error}
        </p>
      )}
      <button type="button" onClick={onClose}>
        Close
      </button>
    </Modal>
  )
}

function HandoffCode({ made, how, onAgain }: { made: InitiatedHandoff; how: string; onAgain: () => void }) {
  const [copied, setCopied] = useState(false)
  const until = new Date(made.expires_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
  return (
    <>
      {/* The SVG is drawn by the qrcode library from the link: no markup from outside. */}
      <div class="qr" data-testid="handoff-qr" dangerouslySetInnerHTML={{ __html: made.qr_code.svg }} />
      <p>{how}</p>
      {/* The link hands its invite secret to this origin: the person should see which one. */}
      <p class="opens-on" data-testid="handoff-opens">
        Opens on <strong>{originOf(made.resume_url)}</strong>
      </p>
      <div class="copy-row">
        <input readOnly value={made.resume_url} data-testid="resume-link" aria-label="Resume link" onFocus={(e) => e.currentTarget.select()} />
        <button
          type="button"
          onClick={() =>
            void navigator.clipboard.writeText(made.resume_url).then(
              () => setCopied(true),
              () => setCopied(false),
            )
          }
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>
      <p class="small">Works once, until {until}. Anyone with the link can open the session: share it only with yourself.</p>
      <button type="button" class="link" onClick={onAgain}>
        Choose another way
      </button>
    </>
  )
}

/**
 * The relay's address and, in the extension, the app address links open
 * (the PWA's). A new app address is confirmed first: every later link
 * hands that origin its invite secret. The PWA links to its own origin.
 */
export function RelaySettings({ settings, onSaved }: { settings: LinkSettings; onSaved: () => void }) {
  const [relay, setRelay] = useState(settings.relayUrl ?? '')
  const [app, setApp] = useState(settings.appUrl)
  const [confirming, setConfirming] = useState(false)
  const relayOk = relay.trim() === '' || isRelayUrl(relay.trim())
  const appOk = isAppUrl(app.trim())
  const save = () => {
    saveLinkSettings({ relayUrl: relay.trim() || null, ...(APP_URL_IS_SET ? { appUrl: app.trim() } : {}) })
    onSaved()
  }
  if (confirming)
    return (
      <div class="relay-settings" data-testid="confirm-app-url">
        <p>
          Handoff links from this device will open on <strong>{originOf(app.trim())}</strong>. Each link gives that page the secret that joins your session: use only
          the address of a kai-sync web app you run or trust.
        </p>
        <div class="dialog-actions">
          <button type="button" class="primary" data-testid="confirm-app" onClick={save}>
            Links open there
          </button>
          <button type="button" onClick={() => setConfirming(false)}>
            Back
          </button>
        </div>
      </div>
    )
  return (
    <form
      class="relay-settings"
      onSubmit={(e) => {
        e.preventDefault()
        if (!relayOk || !appOk) return
        if (APP_URL_IS_SET && app.trim() !== settings.appUrl) setConfirming(true)
        else save()
      }}
    >
      <p>Other devices reach this session through a relay. It stores and forwards only ciphertext.</p>
      <label class="field">
        <span class="field-label">Relay address</span>
        <input data-testid="relay-url" placeholder="wss://relay.example.org" value={relay} onInput={(e) => setRelay(e.currentTarget.value)} />
        {!relayOk && <span class="field-error">Use a ws:// or wss:// address.</span>}
      </label>
      {APP_URL_IS_SET ? (
        <label class="field">
          <span class="field-label">
            Web app address <small>where links open</small>
          </span>
          <input data-testid="app-url" value={app} onInput={(e) => setApp(e.currentTarget.value)} />
          {!appOk && <span class="field-error">Use an http:// or https:// address.</span>}
        </label>
      ) : (
        <p class="small" data-testid="app-origin">
          Links open on this app: <code>{originOf(settings.appUrl)}</code>
        </p>
      )}
      <button type="submit" class="primary" data-testid="save-relay" disabled={!relayOk || !appOk}>
        Save
      </button>
    </form>
  )
}

/**
 * Where a resume link lands (`#kai=…`): accepts the handoff once, then
 * hands over the session it stored. The link's secrets leave the address
 * bar as soon as it is read. A link naming a relay this device has not
 * used is asked about first; declining sends nothing anywhere, so the
 * link stays unspent.
 */
export function ResumePage({
  device,
  link,
  knownRelay,
  mode,
  label,
  onAccepted,
  onHome,
}: {
  device: BrowserDevice | null
  link: string
  /** The relay this device syncs through, if any. */
  knownRelay: string | null
  mode: Mode
  label: string
  onAccepted: (sessionId: string, volatile: VolatileState | null, relayUrl: string) => void
  onHome: () => void
}) {
  const [read] = useState(() => {
    try {
      return { relay: resumeLinkRelay(link), error: null }
    } catch (e) {
      return { relay: null, error: errorText(e) }
    }
  })
  const [agreed, setAgreed] = useState(read.relay !== null && read.relay === knownRelay)
  const [error, setError] = useState<string | null>(read.error)
  useEffect(() => {
    history.replaceState(null, '', location.pathname + location.search)
  }, [])
  useEffect(() => {
    if (!device || !agreed || read.error) return
    let current = true
    acceptHandoffInBrowser(device, link, { mode, label }).then(
      (accepted) => current && onAccepted(accepted.sessionId, accepted.volatile, accepted.relayUrl),
      (e) => current && setError(errorText(e)),
    )
    return () => {
      current = false
    }
  }, [device, link, agreed])
  if (!error && !agreed && read.relay)
    return (
      <main class="main resume" data-testid="resume-page" data-state="unfamiliar-relay">
        <h1>Open this session through an unfamiliar relay?</h1>
        <p data-testid="resume-unfamiliar">
          This link syncs through <code>{read.relay}</code>, which this device has not used
          {knownRelay ? (
            <>
              {' '}
              (it syncs through <code>{knownRelay}</code>)
            </>
          ) : null}
          . Open it only if you made the link on your own device just now.
        </p>
        <div class="dialog-actions">
          <button type="button" class="primary" data-testid="resume-accept" onClick={() => setAgreed(true)}>
            Open through it
          </button>
          <button type="button" data-testid="resume-decline" onClick={onHome}>
            Don't open
          </button>
        </div>
      </main>
    )
  return (
    <main class="main resume" data-testid="resume-page" data-state={error ? 'failed' : 'accepting'}>
      <h1>{error ? 'This link did not open the session' : 'Opening the session from your other device…'}</h1>
      <p>{error ?? 'Checking the link with the relay, joining the session, and waiting for your other device to grant this one its keys. It arrives encrypted and is opened here.'}</p>
      {error && (
        <button type="button" class="primary" onClick={onHome}>
          Go to my sessions
        </button>
      )}
    </main>
  )
}
