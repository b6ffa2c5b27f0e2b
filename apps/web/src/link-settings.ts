import { useEffect, useState } from 'preact/hooks'

// Where this device reaches other devices: the relay's address, and the
// address of the web app that handoff links open. Kept per origin in
// localStorage (addresses, no secrets), so every tab, the popup and the
// side panel use the same. Neither is ever taken from a page's address
// unasked: a handoff link hands its invite secret to the app address, and
// a relay sees when this device is online. The PWA's links open on its
// own origin; the extension's on the address set (and confirmed) in its
// settings. A `?relay=ws://…` in the address (as `pnpm start` prints) is
// only offered: the person says Use before it is stored.

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

/** Whether this page may link to another app address: only the extension, which needs the PWA's. */
export const APP_URL_IS_SET = KAI_TARGET !== 'pwa'

export function readLinkSettings(): LinkSettings {
  const relay = localStorage.getItem(RELAY_KEY)
  const app = APP_URL_IS_SET ? localStorage.getItem(APP_KEY) : null
  return { relayUrl: relay && isRelayUrl(relay) ? relay : null, appUrl: app && isAppUrl(app) ? app : defaultAppUrl() }
}

/** The origin a link to `appUrl` opens on, as the person should read it. */
export function originOf(appUrl: string): string {
  try {
    return new URL(appUrl).origin
  } catch {
    return appUrl
  }
}

export function saveLinkSettings(settings: Partial<LinkSettings>): void {
  if (settings.relayUrl !== undefined) {
    if (settings.relayUrl === null) localStorage.removeItem(RELAY_KEY)
    else localStorage.setItem(RELAY_KEY, settings.relayUrl)
  }
  if (settings.appUrl !== undefined && APP_URL_IS_SET) localStorage.setItem(APP_KEY, settings.appUrl)
  dispatchEvent(new Event('kai-link-settings'))
}

/**
 * Reads `?relay=` (and any `?app=`, which is ignored) off the page's
 * address, drops both from it, and returns the relay address to offer the
 * person: a valid one that differs from the stored relay, else null.
 * Nothing is stored here.
 */
export function takeQuerySettings(): { offeredRelay: string | null } {
  const params = new URLSearchParams(location.search)
  const relay = params.get('relay')
  if (relay === null && !params.has('app')) return { offeredRelay: null }
  params.delete('relay')
  params.delete('app')
  const query = params.toString()
  history.replaceState(history.state, '', `${location.pathname}${query ? `?${query}` : ''}${location.hash}`)
  const offered = relay?.trim() ?? ''
  return { offeredRelay: isRelayUrl(offered) && offered !== readLinkSettings().relayUrl ? offered : null }
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
