import { useEffect, useState } from 'preact/hooks'
import { BrowserSession, SessionCatalog, type BrowserDevice, type BrowserSyncStatus, type CatalogEntry } from '@kai-sync/browser'
import { toKaiError, type KaiError, type Mode } from '@kai-sync/model'
import type { Peer } from '@kai-sync/engine'

/** Re-renders on every change of `source`'s event; returns a counter that changes with it. */
function useEvent(source: { on(e: string, f: () => void): void; off(e: string, f: () => void): void } | null, event: string): number {
  const [version, setVersion] = useState(0)
  useEffect(() => {
    if (!source) return
    const bump = () => setVersion((v) => v + 1)
    source.on(event, bump)
    return () => source.off(event, bump)
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
export function useBrowserSession(device: BrowserDevice | null, sessionId: string | null, mode: Mode, label: string, created: { current: BrowserSession | null }): Opened {
  const [opened, setOpened] = useState<Opened>({ session: null, error: null })
  useEffect(() => {
    setOpened({ session: null, error: null })
    if (!device || !sessionId) return
    let session: BrowserSession | null = null
    let cancelled = false
    const adopt = created.current?.sessionId === sessionId ? created.current : null
    created.current = null
    const ready = adopt ? Promise.resolve(adopt) : BrowserSession.open(device, sessionId, { mode, label })
    ready.then(
      (s) => {
        session = s
        if (cancelled) void s.close()
        else setOpened({ session: s, error: null })
      },
      (e) => !cancelled && setOpened({ session: null, error: toKaiError(e) }),
    )
    const onPageHide = () => void session?.close()
    addEventListener('pagehide', onPageHide)
    return () => {
      cancelled = true
      removeEventListener('pagehide', onPageHide)
      void session?.close()
    }
  }, [device, sessionId, mode, label])
  return opened
}

/** A counter that changes whenever the session doc does. */
export function useSessionVersion(session: BrowserSession | null): number {
  return useEvent(session?.engine.session ?? null, 'change')
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
