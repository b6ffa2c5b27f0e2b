import { useEffect, useState } from 'preact/hooks'

// Where this device reaches other devices: the relay's address, and the
// address of the web app that handoff links open. Kept per origin in
// localStorage (addresses, no secrets), so every tab, the popup and the
// side panel use the same. A page opened with `?relay=ws://…` (and
// `&app=http://…`) adopts them: that is how `pnpm start` configures the PWA.

export interface LinkSettings {
  /** ws:// or wss:// address of the relay; null: this device syncs only between its own contexts. */
  relayUrl: string | null
  /** The page a handoff link opens on the other device. */
  appUrl: string
}

const RELAY_KEY = 'kai-sync.relay'
const APP_KEY = 'kai-sync.app'

export function isRelayUrl(url: string): boolean {
  try {
    const u = new URL(url)
    return (u.protocol === 'ws:' || u.protocol === 'wss:') && u.host !== ''
  } catch {
    return false
  }
}

export function isAppUrl(url: string): boolean {
  try {
    return ['http:', 'https:', 'chrome-extension:'].includes(new URL(url).protocol)
  } catch {
    return false
  }
}

/** The PWA links to itself; the extension to its tab page until told the PWA's address. */
function defaultAppUrl(): string {
  return KAI_TARGET === 'pwa' ? `${location.origin}${location.pathname}` : `${location.origin}/kai.html`
}

export function readLinkSettings(): LinkSettings {
  const relay = localStorage.getItem(RELAY_KEY)
  const app = localStorage.getItem(APP_KEY)
  return { relayUrl: relay && isRelayUrl(relay) ? relay : null, appUrl: app && isAppUrl(app) ? app : defaultAppUrl() }
}

export function saveLinkSettings(settings: Partial<LinkSettings>): void {
  if (settings.relayUrl !== undefined) {
    if (settings.relayUrl === null) localStorage.removeItem(RELAY_KEY)
    else localStorage.setItem(RELAY_KEY, settings.relayUrl)
  }
  if (settings.appUrl !== undefined) localStorage.setItem(APP_KEY, settings.appUrl)
  dispatchEvent(new Event('kai-link-settings'))
}

/** Adopts `?relay=` and `?app=` from the page's address, then drops them from it. */
export function adoptQuerySettings(): void {
  const params = new URLSearchParams(location.search)
  const relay = params.get('relay')
  const app = params.get('app')
  if (relay === null && app === null) return
  if (relay !== null && isRelayUrl(relay)) saveLinkSettings({ relayUrl: relay })
  if (app !== null && isAppUrl(app)) saveLinkSettings({ appUrl: app })
  params.delete('relay')
  params.delete('app')
  const query = params.toString()
  history.replaceState(history.state, '', `${location.pathname}${query ? `?${query}` : ''}${location.hash}`)
}

/** The settings, live: a change in another context of this origin shows here too. */
export function useLinkSettings(): LinkSettings {
  const [settings, setSettings] = useState(readLinkSettings)
  useEffect(() => {
    const update = () =>
      setSettings((old) => {
        const next = readLinkSettings()
        return next.relayUrl === old.relayUrl && next.appUrl === old.appUrl ? old : next
      })
    addEventListener('storage', update)
    addEventListener('kai-link-settings', update)
    return () => {
      removeEventListener('storage', update)
      removeEventListener('kai-link-settings', update)
    }
  }, [])
  return settings
}
