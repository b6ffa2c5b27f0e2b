import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { SessionCatalog, type BrowserSession } from '@kai-sync/browser'
import { toBase64Url } from '@kai-sync/crypto'
import type { ConflictInfo, Json } from '@kai-sync/model'
import { addMemory, deviceName, resolveConflict, setConfig, setPolicy } from './session-actions'
import { ChatHistory } from './components/chat-history'
import { Composer } from './components/composer'
import { AuditLog, ConfigEditor, ConflictDialog, DeviceList, MemoryList } from './lazy-components'
import { PresenceBar } from './components/presence-bar'
import { SyncStatusChip } from './components/sync-status'
import { configViewOf } from './config-view'
import { loadDemoAgent, type DemoAgent } from './demo-agent-loader'
import { answererOf, type Answerer } from './answerer'
import type { ReplyActions } from './components/chat-history'
import { useHistory, usePeers, usePoliciesVersion, useSessionVersion, useSyncStatus } from './session-hooks'
import { early } from './early/early-input'
import { deliverEarly } from './early/deliver-early'
import { forget, type EarlyMessage } from './early/early-outbox'
import { rememberSession } from './early/last-session'

type Drawer = 'settings' | 'notes' | 'devices' | 'audit' | 'memory' | null

const DRAWER_TITLES: Record<Exclude<Drawer, null>, string> = { settings: 'Agent settings', notes: 'Scratchpad', devices: 'Devices', audit: 'Audit log', memory: 'Memory' }

/** Merges into this context's UI state (volatile: live to others, kept at rest). */
function setUi(session: BrowserSession, patch: Record<string, Json>): void {
  void session.setVolatile({ ui_state: { ...session.presence.state.volatile.ui_state, ...patch } })
}

function titleOf(session: BrowserSession): string | null {
  const doc = session.engine.session
  for (const id of doc.messageIds()) {
    const m = doc.message(id)
    if (m?.role === 'user' && m.content.trim()) return m.content.trim().replace(/\s+/g, ' ').slice(0, 60)
  }
  return null
}

/** Where a takeover this device issued took the session, once it stepped down. */
function movedTo(session: BrowserSession): string | null {
  const engine = session.engine
  if (engine.canWrite) return null
  const self = toBase64Url(engine.device.publicKey)
  const successor = engine.roster.list().find((m) => m.via?.transfer === 'takeover' && m.via.inviteIssuer === self)
  return successor ? successor.label || 'another device' : null
}

/** Who answers here: the agent device(s) and their model, or the demo agent (in this page, no model). */
function AnswererLine({ answerer }: { answerer: Answerer }) {
  return (
    <p class="answerer" data-testid="answerer" data-kind={answerer.kind}>
      {answerer.kind === 'agent' ? (
        <>Answered by {answerer.agents.map((a) => (a.model ? `${a.agent} (${a.model} unless the session's settings name a model)` : a.agent)).join(', ')}</>
      ) : (
        <>Answered by the demo agent built into this page (no model). Start a session with an agent device (kai agent) for real answers.</>
      )}
    </p>
  )
}

function ReadOnlyBanner({ session }: { session: BrowserSession }) {
  const moved = movedTo(session)
  return (
    <div class={`banner ${moved ? 'moved' : 'read-only'}`} role="status" data-testid="read-only" data-moved-to={moved ?? undefined}>
      {moved ? (
        <>
          <strong>This session moved to {moved}.</strong> It continues there; this window follows it and can no longer write.
        </>
      ) : (
        <>
          <strong>Read-only.</strong> You follow this session live; the device that shared it writes.
        </>
      )}
    </div>
  )
}

interface Unsent {
  /** Sent before the session opened, on a device that may only read it. */
  refused: EarlyMessage[]
  /** Kept on disk but no longer readable (damaged, or the store's key was lost). */
  unreadable: number
  error: string | null
}

/** What was sent before the session opened and could not go into it, said with what the person can do. */
function UnsentNotice({ unsent, onDismiss }: { unsent: Unsent; onDismiss: () => void }) {
  const { refused, unreadable, error } = unsent
  return (
    <div class="banner read-only" role="alert" data-testid="early-unsent" data-refused={refused.length} data-unreadable={unreadable}>
      {error ? (
        <>
          <strong>Messages sent while the session opened could not be delivered yet</strong> ({error}). They stay on this device and are sent the next time the session opens here.
        </>
      ) : refused.length > 0 ? (
        <>
          <strong>{refused.length === 1 ? 'A message you sent while the session opened was not sent' : `${refused.length} messages you sent while the session opened were not sent`}:</strong> this device may only read this session. Copy what you need, then discard them:
          <ul>
            {refused.map((m) => (
              <li key={m.id} class="content">
                {m.text}
              </li>
            ))}
          </ul>
          <button type="button" class="link" data-testid="discard-unsent" onClick={() => void forget(refused.map((m) => m.id)).then(onDismiss)}>
            Discard
          </button>
        </>
      ) : (
        <>
          <strong>{unreadable === 1 ? 'A message' : `${unreadable} messages`} sent while the session opened could not be read back on this device</strong> and {unreadable === 1 ? 'was' : 'were'} not sent.{' '}
          <button type="button" class="link" onClick={onDismiss}>
            OK
          </button>
        </>
      )}
    </div>
  )
}

export interface SessionViewProps {
  session: BrowserSession
  /** Shown left of the title in one-column layouts (the sessions button). */
  leading?: preact.ComponentChildren
  /** Shown under the composer (the popup's "open elsewhere"). */
  footer?: preact.ComponentChildren
  /** Just started here: the composer takes focus. */
  fresh?: boolean
  onHandoff: () => void
  /** Leaves the session on this device (the Devices drawer asks first). */
  onLeave: () => Promise<void>
}

export function SessionView({ session, leading, footer, fresh = false, onHandoff, onLeave }: SessionViewProps) {
  const doc = session.engine.session
  const version = useSessionVersion(session)
  const status = useSyncStatus(session)
  const peers = usePeers(session)
  const volatile = session.presence.state.volatile
  // What the person wrote here before the session was open (the shell's composer): its draft wins, being what they are looking at.
  const [taken] = useState(() => early.take(session.sessionId))
  const [draft, setDraft] = useState(() => (taken.draft && session.engine.canWrite ? taken.draft : String(volatile.ui_state.draft ?? '')))
  const [unsent, setUnsent] = useState<Unsent | null>(null)
  const [scratchpad, setScratchpad] = useState(volatile.scratchpad)
  const [drawer, setDrawer] = useState<Drawer>(() => (volatile.ui_state.drawer as Drawer) ?? null)
  const [laterConflicts, setLater] = useState('')
  const messages = useHistory(session, version)
  const policiesVersion = usePoliciesVersion(session)
  const view = useMemo(() => configViewOf(doc), [doc, version, policiesVersion])
  const nameOf = (id: string) => deviceName(session, id)
  const title = useMemo(() => titleOf(session), [session, version])
  const sealedTitle = useRef<string | null>(null)

  // The demo agent arrives a moment after the session (demo-agent-loader.ts); a fetch that fails is said, and tried again at the next need.
  const [demoFailed, setDemoFailed] = useState<string | null>(null)
  const withDemo = (f: (agent: DemoAgent) => void) =>
    void loadDemoAgent().then(
      (agent) => {
        setDemoFailed(null)
        f(agent)
      },
      (e: unknown) => setDemoFailed(e instanceof Error ? e.message : String(e)),
    )
  useEffect(() => {
    let live = true
    let stop: (() => void) | undefined
    withDemo((agent) => {
      if (live) stop = agent.resumeStream(session)
    })
    return () => {
      live = false
      stop?.()
    }
  }, [session])
  useEffect(() => {
    let live = true
    withDemo((agent) => live && agent.adoptOrphanedStreams(session))
    return () => {
      live = false
    }
  }, [session, peers])
  // The list shows the first question as the title, sealed like everything at rest.
  useEffect(() => {
    if (!title || title === sealedTitle.current) return
    sealedTitle.current = title
    void (async () => {
      const keys = await session.device.keys.keyring(session.sessionId)
      await session.device.catalog.touch(session.sessionId, { title: await SessionCatalog.sealTitle(session.sessionId, keys, title) })
    })()
  }, [session, title])

  const readOnly = !session.engine.canWrite
  useEffect(() => rememberSession({ id: session.sessionId, canWrite: !readOnly }), [session, readOnly])
  const sendMessage = (text: string, sentEarly?: EarlyMessage) => {
    const sent = doc.appendMessage({ id: sentEarly?.id ?? `m-${crypto.randomUUID()}`, role: 'user', content: text, ...(sentEarly ? { timestamp: sentEarly.at } : {}) })
    // A session with an agent device is answered by it: no demo agent here then.
    if (answererOf(session).kind === 'demo') withDemo((agent) => void agent.replyTo(session, text, { replyTo: sent.id }))
  }
  useEffect(() => {
    if (taken.draft && session.engine.canWrite) setUi(session, { draft: taken.draft })
    let live = true
    deliverEarly(session, taken.pending, (m) => sendMessage(m.text, m)).then(
      (r) => live && (r.refused.length > 0 || r.unreadable > 0) && setUnsent({ ...r, error: null }),
      (e: unknown) => live && setUnsent({ refused: [], unreadable: 0, error: e instanceof Error ? e.message : String(e) }),
    )
    return () => {
      live = false
    }
  }, [session])
  // Read at each change of the session or the roster (peers follow both): an agent device joining, or removed, shows at once.
  const answerer = useMemo(() => answererOf(session), [session, version, peers])
  const answering = answerer.kind
  // Kept while nothing it depends on changes, so the rows (memo) redraw only for their own message.
  const actions = useMemo<ReplyActions | null>(
    () =>
      readOnly
        ? null
        : {
            stop: (m) => void doc.requestControl('stop', m.id),
            requested: (m, kind) => doc.controlsFor(m.id).some((c) => c.kind === kind),
            // A demo reply is answered again here (only while no agent device answers); an agent's by a retry request to it.
            canRetry: (m) => (m.metadata?.demo === true ? answering === 'demo' : typeof m.metadata?.agent === 'string'),
            retry: (m) => {
              if (m.metadata?.demo === true) withDemo((agent) => void agent.retryDemo(session, m))
              else doc.requestControl('retry', m.id)
            },
          },
    [session, readOnly, answering],
  )
  const userChoices: ConflictInfo[] = view.conflicts.filter((c) => c.policy === 'user_choice')
  const conflictKey = JSON.stringify(userChoices.map((c) => c.values.map((v) => v.hlc)))
  const toggle = (d: Exclude<Drawer, null>) => {
    const next = drawer === d ? null : d
    setDrawer(next)
    setUi(session, { drawer: next })
  }

  return (
    <>
      <main class="main">
        <header class="topbar">
          {leading}
          <h1 class="session-title" title={title ?? undefined}>
            {title ?? 'New session'}
          </h1>
          <SyncStatusChip status={status} />
          <div class="actions">
            <button type="button" class={`icon${drawer === 'settings' ? ' on' : ''}`} title="Agent settings" aria-label="Agent settings" data-testid="toggle-settings" onClick={() => toggle('settings')}>
              ⚙
            </button>
            <button type="button" class={`icon${drawer === 'notes' ? ' on' : ''}`} title="Scratchpad" aria-label="Scratchpad" data-testid="toggle-notes" onClick={() => toggle('notes')}>
              ✎
            </button>
            <button type="button" class={`icon${drawer === 'devices' ? ' on' : ''}`} title="Devices" aria-label="Devices" data-testid="toggle-devices" onClick={() => toggle('devices')}>
              ▣
            </button>
            <button type="button" class={`icon${drawer === 'memory' ? ' on' : ''}`} title="Memory" aria-label="Memory" data-testid="toggle-memory" onClick={() => toggle('memory')}>
              ◈
            </button>
            <button type="button" class={`icon${drawer === 'audit' ? ' on' : ''}`} title="Audit log" aria-label="Audit log" data-testid="toggle-audit" onClick={() => toggle('audit')}>
              ☷
            </button>
            <button type="button" class="handoff" data-testid="handoff" title="Continue on another device" onClick={onHandoff}>
              <span aria-hidden="true">⇄</span>
              <span class="label">Hand off</span>
            </button>
          </div>
        </header>
        <PresenceBar peers={peers} />
        {readOnly && <ReadOnlyBanner session={session} />}
        {unsent && <UnsentNotice unsent={unsent} onDismiss={() => setUnsent(null)} />}
        <AnswererLine answerer={answerer} />
        {demoFailed && answering === 'demo' && (
          <p class="problem" role="alert" data-testid="demo-load-failed">
            The demo agent could not be loaded ({demoFailed}), so it cannot answer yet. Check the connection: it answers the next message you send once its code arrives.
          </p>
        )}
        <ChatHistory messages={messages} version={version} actions={actions} empty={answerer.kind === 'agent' ? answerer.agents[0]!.agent : 'the demo agent'} />
        <Composer
          autoFocus={fresh}
          draft={readOnly ? '' : draft}
          disabled={readOnly}
          onDraft={(text) => {
            setDraft(text)
            setUi(session, { draft: text })
          }}
          handover={early}
          onSend={(text) => {
            sendMessage(text)
            setDraft('')
            setUi(session, { draft: '' })
          }}
        />
        {footer}
      </main>
      {drawer && (
        <aside class="drawer" data-testid="drawer">
          <header>
            <h2>{DRAWER_TITLES[drawer]}</h2>
            <button type="button" class="icon" aria-label="Close" onClick={() => toggle(drawer)}>
              ✕
            </button>
          </header>
          {drawer === 'settings' ? (
            <ConfigEditor
              view={view}
              readOnly={readOnly}
              deviceName={nameOf}
              onSet={(field, value) => setConfig(session, field, value)}
              onPolicy={(target, policy) => setPolicy(session, target, policy)}
              onKeep={(field, value) => resolveConflict(session, field, value)}
            />
          ) : drawer === 'devices' ? (
            <DeviceList session={session} peers={peers} onLeave={onLeave} />
          ) : drawer === 'audit' ? (
            <AuditLog entries={doc.audit()} deviceName={nameOf} />
          ) : drawer === 'memory' ? (
            <MemoryList snapshots={doc.memory()} readOnly={readOnly} deviceName={nameOf} onAdd={(summary, note) => addMemory(session, summary, note)} />
          ) : (
            <textarea
              class="scratchpad"
              data-testid="scratchpad"
              placeholder="Notes for this session. They stay on this device, sealed, and follow you between tabs, popup and side panel."
              value={scratchpad}
              onInput={(e) => {
                setScratchpad(e.currentTarget.value)
                void session.setVolatile({ scratchpad: e.currentTarget.value })
              }}
            />
          )}
        </aside>
      )}
      {!readOnly && userChoices.length > 0 && laterConflicts !== conflictKey && (
        <ConflictDialog conflicts={userChoices} deviceName={nameOf} onChoose={(field, value) => resolveConflict(session, field, value)} onLater={() => setLater(conflictKey)} />
      )}
    </>
  )
}
