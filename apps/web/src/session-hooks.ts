import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { BrowserSession, SessionCatalog, type BrowserDevice, type BrowserSyncStatus, type CatalogEntry, type ConnectRelay } from '@kai-sync/browser'
import { KaiError, toKaiError, type Message, type Mode } from '@kai-sync/model'
import type { Peer } from '@kai-sync/engine'

// Every hook of the page redraws in one animation frame, asked for once,
// after the event that wants it: a change event runs ahead of the engine's
// own work on the change (sealing it, handing it on), and asking Chromium
// for a frame costs 50-350 µs of the calling task here, paid once per
// frame rather than once per hook inside the event.
const waiting = new Set<() => void>()
let asked = false

function drawNextFrame(f: () => void): void {
  waiting.add(f)
  if (asked) return
  asked = true
  queueMicrotask(() =>
    requestAnimationFrame(() => {
      asked = false
      const due = [...waiting]
      waiting.clear()
      for (const g of due) g()
    }),
  )
}

/** Calls `f` at most once per animation frame, however often it is asked to. */
function perFrame(f: () => void): { ask: () => void; cancel: () => void } {
  return { ask: () => drawNextFrame(f), cancel: () => waiting.delete(f) }
}

/**
 * A counter that changes after `source` emits `event`, at most once per
 * frame. Drawing then never runs inside the event, ahead of the engine's
 * own work on the change (sealing it, say), and a burst draws once.
 */
function useEvent(source: { on(e: string, f: () => void): void; off(e: string, f: () => void): void } | null, event: string): number {
  const [version, setVersion] = useState(0)
  useEffect(() => {
    if (!source) return
    const bump = perFrame(() => setVersion((v) => v + 1))
    source.on(event, bump.ask)
    return () => {
      bump.cancel()
      source.off(event, bump.ask)
    }
  }, [source, event])
  return version
}

export interface SessionListItem {
  entry: CatalogEntry
  title: string | null
}

/** The session list with titles opened, live across contexts. */
export function useSessionList(device: BrowserDevice | null): SessionListItem[] {
  const [items, setItems] = useState<SessionListItem[]>([])
  const version = useEvent(device?.catalog ?? null, 'change')
  useEffect(() => {
    if (!device) return
    let current = true
    void (async () => {
      const entries = await device.catalog.list()
      const listed = await Promise.all(
        entries.map(async (entry) => {
          const keys = await device.keys.keyring(entry.sessionId).catch(() => null)
          return { entry, title: keys ? await SessionCatalog.openTitle(entry, keys) : null }
        }),
      )
      if (current) setItems(listed)
    })()
    return () => {
      current = false
    }
  }, [device, version])
  return items
}

export type Opened = { session: BrowserSession; error: null } | { session: null; error: KaiError | null }

/**
 * Opens `sessionId` in this context while it is selected and closes it
 * after; a session this context just created is taken as is. Closing also
 * happens on pagehide, so the others see this context go.
 */
export function useBrowserSession(
  device: BrowserDevice | null,
  sessionId: string | null,
  mode: Mode,
  label: string,
  created: { current: BrowserSession | null },
  relay: ConnectRelay | undefined,
): Opened {
  const [opened, setOpened] = useState<Opened>({ session: null, error: null })
  useEffect(() => {
    setOpened({ session: null, error: null })
    if (!device || !sessionId) return
    let session: BrowserSession | null = null
    let cancelled = false
    const adopt = created.current?.sessionId === sessionId ? created.current : null
    created.current = null
    const ready = adopt ? Promise.resolve(adopt) : BrowserSession.open(device, sessionId, { mode, label, relay })
    ready.then(
      (s) => {
        session = s
        if (cancelled) void s.close()
        else setOpened({ session: s, error: null })
      },
      (e) => !cancelled && setOpened({ session: null, error: toKaiError(e) }),
    )
    // Left in another context of this origin: its data is being deleted, so this one lets go too.
    const onCatalog = () => {
      if (!session) return
      void device.catalog.get(sessionId).then((entry) => {
        if (entry || cancelled) return
        cancelled = true
        void session?.close()
        setOpened({ session: null, error: new KaiError('not_found', 'this session was left on this device') })
      })
    }
    device.catalog.on('change', onCatalog)
    const onPageHide = () => void session?.close()
    // y-indexeddb says nothing of what reached the disk; the session does.
    // While the last keystrokes are still on their way, the close waits for
    // the person to confirm it (by then they are usually saved).
    const onBeforeUnload = (e: BeforeUnloadEvent) => {
      if (session?.unsaved) e.preventDefault()
    }
    addEventListener('pagehide', onPageHide)
    addEventListener('beforeunload', onBeforeUnload)
    return () => {
      cancelled = true
      device.catalog.off('change', onCatalog)
      removeEventListener('pagehide', onPageHide)
      removeEventListener('beforeunload', onBeforeUnload)
      void session?.close()
    }
  }, [device, sessionId, mode, label, relay])
  return opened
}

/** A counter that changes with the session doc: a reply streaming in redraws once per frame, not per token. */
export function useSessionVersion(session: BrowserSession | null): number {
  return useEvent(session?.engine.session ?? null, 'change')
}

/**
 * The history as shown, kept current by re-reading only the messages each
 * change names: a token streamed into one reply costs one read, not one
 * per message. Unchanged messages keep their object, so their rows skip
 * re-rendering.
 */
export function useHistory(session: BrowserSession, version: number): Message[] {
  const cache = useRef<{ session: BrowserSession; byId: Map<string, Message>; dirty: Set<string> } | null>(null)
  if (cache.current?.session !== session) {
    const fresh = { session, byId: new Map<string, Message>(), dirty: new Set<string>() }
    // Lives as long as the session doc: destroying it drops its listeners.
    session.engine.session.on('change', (c) => {
      for (const id of c.messages) fresh.dirty.add(id)
    })
    cache.current = fresh
  }
  const state = cache.current
  return useMemo(() => {
    const doc = session.engine.session
    for (const id of state.dirty) {
      const m = doc.message(id)
      if (m) state.byId.set(id, m)
      else state.byId.delete(id)
    }
    state.dirty.clear()
    return doc.messageIds().map((id) => state.byId.get(id) ?? cacheMiss(state.byId, doc.message(id)!, id))
  }, [session, version])
}

function cacheMiss(byId: Map<string, Message>, m: Message, id: string): Message {
  byId.set(id, m)
  return m
}

export function useSyncStatus(session: BrowserSession | null): BrowserSyncStatus | null {
  useEvent(session, 'status')
  return session?.status ?? null
}

/** Everyone with this session open; refreshed on changes and as closed ones age out. */
export function usePeers(session: BrowserSession | null): Peer[] {
  const version = useEvent(session?.presence ?? null, 'change')
  const [tick, setTick] = useState(0)
  useEffect(() => {
    const timer = setInterval(() => setTick((t) => t + 1), 5000)
    return () => clearInterval(timer)
  }, [])
  void version
  void tick
  return session ? session.presence.peers() : []
}

/** A counter that changes when a policy setting or the open conflicts change, here or on another device. */
export function usePoliciesVersion(session: BrowserSession): number {
  const policies = session.engine.session.policies
  return useEvent(policies, 'policies') + useEvent(policies, 'conflicts')
}
