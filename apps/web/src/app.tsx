import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { BrowserSession, leaveBrowserSession, openBrowserDevice, relayConnector, type BrowserDevice, type LeftRoster } from '@kai-sync/browser'
import { toKaiError, type KaiError, type Mode, type VolatileState } from '@kai-sync/model'
import { SessionList } from './components/session-list'
import { Modal } from './components/modal'
import { HandoffDialog, ResumePage } from './lazy-components'
import { RelayOffer } from './components/relay-offer'
import { SessionView } from './session-view'
import { OpenElsewhere } from './extension/open-elsewhere'
import { useBrowserSession, useSessionList } from './session-hooks'
import { goHome, goToSession, useRoute } from './route'
import { contextLabel, isCompact, type Page } from './page-mode'
import { saveLinkSettings, useLinkSettings } from './link-settings'
import { errorText } from './error-text'
import { Brand, Opening } from './app-shell'
import { EarlySession } from './early/early-session'
import { earlyTarget, lastSession, rememberSession } from './early/last-session'
import { forget } from './early/early-outbox'

export { preloadViews } from './lazy-components'

/** For people poking at it in devtools, and for the tests and benchmark that drive the real app. */
export interface KaiDebug {
  device: BrowserDevice | null
  session: BrowserSession | null
}
const debug: KaiDebug = { device: null, session: null }
Object.assign(globalThis, { kaiApp: debug })

export function App({ page, mode, offeredRelay = null }: { page: Page; mode: Mode; offeredRelay?: string | null }) {
  const label = contextLabel(page, mode)
  const compact = isCompact(page, mode)
  const [device, setDevice] = useState<BrowserDevice | null>(null)
  const [fatal, setFatal] = useState<KaiError | null>(null)
  const [sheet, setSheet] = useState(false)
  const [handoff, setHandoff] = useState(false)
  const [offer, setOffer] = useState(offeredRelay)
  // Sessions left from this context: out of the list at once, before the catalog says so.
  const [left, setLeft] = useState<{ ids: ReadonlySet<string>; roster: LeftRoster | null }>({ ids: new Set(), roster: null })
  const route = useRoute()
  const listed = useSessionList(device)
  const items = useMemo(() => listed.filter((i) => !left.ids.has(i.entry.sessionId)), [listed, left])
  const created = useRef<BrowserSession | null>(null)
  // The session just started here: its composer takes focus, as the person means to write.
  const [fresh, setFresh] = useState<string | null>(null)

  useEffect(() => {
    openBrowserDevice().then(setDevice, (e) => setFatal(toKaiError(e)))
  }, [])
  // With no session in the URL, show the one this browser showed last (the
  // shell drew it already, and it opens without waiting for the list), else
  // the latest; and pin it there so the view does not jump when another
  // context touches another session.
  const hinted = useRef(route.view === 'session' && route.id === null ? lastSession() : null)
  useEffect(() => {
    if (route.view !== 'session' || route.id !== null) return
    const pick = hinted.current?.id ?? items[0]?.entry.sessionId
    if (pick) goToSession(pick, true)
  }, [route, items])

  const settings = useLinkSettings()
  const relay = useMemo(() => (device && settings.relayUrl ? relayConnector(settings.relayUrl, device.key) : undefined), [device, settings.relayUrl])
  const selected = route.view === 'session' ? route.id : null
  const { session, error } = useBrowserSession(device, selected, mode, label, created, relay)
  debug.device = device
  debug.session = session
  // The session last shown is not here any more (left, or its data cleared) and only the hint named it: open the latest instead.
  useEffect(() => {
    if (session) hinted.current = null
    else if (error?.code === 'not_found' && hinted.current?.id === selected) {
      hinted.current = null
      rememberSession(null)
      goHome()
    }
  }, [session, error, selected])

  const newSession = async () => {
    if (!device) return
    try {
      const s = await BrowserSession.create(device, { mode, label, agentId: 'assistant', userId: 'me', relay })
      created.current = s
      setFresh(s.sessionId)
      setSheet(false)
      goToSession(s.sessionId)
    } catch (e) {
      setFatal(toKaiError(e))
    }
  }
  // Deletes the session here (and steps this device out of its roster if it may), then shows the next one.
  const leave = async (s: BrowserSession) => {
    setLeft((l) => ({ ids: new Set([...l.ids, s.sessionId]), roster: l.roster }))
    if (lastSession()?.id === s.sessionId) rememberSession(null)
    void forget({ sessionId: s.sessionId }).catch(() => undefined)
    const roster = await leaveBrowserSession(s)
    setLeft((l) => ({ ids: l.ids, roster }))
    goHome()
  }
  // A handoff arrived (through the relay this device uses, or one the
  // person agreed to): the session syncs through the link's relay, and
  // opens where the other device was (its draft, notes, a reply mid-stream).
  const resumed = async (id: string, volatile: VolatileState | null, relayUrl: string) => {
    if (!device) return
    try {
      if (settings.relayUrl !== relayUrl) saveLinkSettings({ relayUrl })
      const s = await BrowserSession.open(device, id, { mode, label, relay: relayConnector(relayUrl, device.key) })
      if (volatile) await s.setVolatile(volatile)
      created.current = s
      goToSession(id, true)
    } catch (e) {
      setFatal(toKaiError(e))
    }
  }
  const list = (
    <SessionList
      items={items}
      current={selected}
      onNew={() => void newSession()}
      onSelect={(id) => {
        setSheet(false)
        setFresh(null)
        goToSession(id)
      }}
    />
  )

  let body
  if (fatal) body = <Problem error={fatal} />
  else if (route.view === 'resume')
    body = <ResumePage device={device} link={route.link} knownRelay={settings.relayUrl} mode={mode} label={label} onAccepted={(id, volatile, relayUrl) => void resumed(id, volatile, relayUrl)} onHome={goHome} />
  else if (error) body = <Problem error={error} />
  else if (session)
    body = (
      <SessionView
        key={session.sessionId}
        session={session}
        fresh={fresh === session.sessionId}
        onHandoff={() => setHandoff(true)}
        onLeave={() => leave(session)}
        leading={
          compact && (
            <button type="button" class="icon" aria-label="Sessions" data-testid="open-sessions" onClick={() => setSheet(true)}>
              ☰
            </button>
          )
        }
        footer={page === 'popup' && <OpenElsewhere sessionId={session.sessionId} />}
      />
    )
  else if (device && items.length === 0 && selected === null) body = <Welcome onNew={() => void newSession()} />
  else {
    // The session about to open, if the shell drew it: its composer stays, taking typing, until the session view takes over.
    const target = route.view === 'session' ? earlyTarget(location.hash) : null
    body = target ? <EarlySession session={target} /> : <Opening />
  }

  return (
    <div class={`app ${compact ? 'compact' : 'wide'} page-${page} mode-${mode}`} data-mode={mode}>
      {!compact && (
        <aside class="sidebar">
          <Brand />
          {list}
        </aside>
      )}
      {body}
      {compact && sheet && (
        <Modal sheet label="Sessions" testId="sessions-sheet" onClose={() => setSheet(false)} closeOnBackdrop>
          <Brand />
          {list}
        </Modal>
      )}
      {offer && <RelayOffer offered={offer} current={settings.relayUrl} onDone={() => setOffer(null)} />}
      {left.roster && <LeftNotice roster={left.roster} onClose={() => setLeft((l) => ({ ids: l.ids, roster: null }))} />}
      {handoff && session && <HandoffDialog session={session} settings={settings} label={label} onClose={() => setHandoff(false)} />}
    </div>
  )
}

const LEFT_TEXT: Record<LeftRoster, string> = {
  stepped_out: 'Its keys and messages are deleted here, and the other devices see this one removed.',
  owner: 'Its keys and messages are deleted here. This device owned it and stays in its roster.',
  removed: 'Its keys and messages are deleted here.',
  not_told: 'Its keys and messages are deleted here, but the relay was not reached: the other devices still list this one until its owner removes it.',
}

function LeftNotice({ roster, onClose }: { roster: LeftRoster; onClose: () => void }) {
  return (
    <div class="toast notice" role="status" data-testid="left-notice" data-roster={roster}>
      <strong>You left the session.</strong> {LEFT_TEXT[roster]}{' '}
      <button type="button" class="link" onClick={onClose}>
        OK
      </button>
    </div>
  )
}

function Welcome({ onNew }: { onNew: () => void }) {
  return (
    <main class="main welcome">
      <h1>Your agent sessions, everywhere you open them</h1>
      <p>Start a session here and it is live in every tab, the popup and the side panel of this browser, encrypted before it touches the disk.</p>
      <button type="button" class="primary" data-testid="welcome-new" onClick={onNew}>
        Start a session
      </button>
    </main>
  )
}

function Problem({ error }: { error: KaiError }) {
  return (
    <main class="main problem" data-testid="problem" data-code={error.code}>
      <h1>{error.code === 'not_found' ? 'This session is not on this device' : 'Something went wrong'}</h1>
      <p>{errorText(error)}</p>
    </main>
  )
}
