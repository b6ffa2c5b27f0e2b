import { afterEach } from 'vitest'
import type { LaunchOptions, Page } from '@kai-sync/browser-harness'
import { startRelay, type SpawnedRelay } from './relay-harness'
import { openExtension, openPwa, sessionReady, setAppAddress, startSession, trustRelay, useOfferedRelay, type Extension, type Pwa } from './web-harness'

// Two devices linked by a real kai-relay, as most web tests need them: the
// extension in one Chromium profile and the PWA in another, set up as a
// person must (the app adopts no address unasked), and all of it closed
// after each test whatever the test left open.

/** What a test opened; `closedAfterEach` closes it. */
export interface Opened {
  relay?: SpawnedRelay | undefined
  pwa?: Pwa | undefined
  extension?: Extension | undefined
}

/** The relay and profiles a test opens go here: they are closed after each test of the file. */
export function closedAfterEach(): Opened {
  const opened: Opened = {}
  afterEach(async () => {
    const { extension, pwa, relay } = opened
    opened.extension = opened.pwa = opened.relay = undefined
    await extension?.close()
    await pwa?.close()
    await relay?.close()
  })
  return opened
}

export interface TwoDevices {
  relay: SpawnedRelay
  pwa: Pwa
  extension: Extension
  /** The extension's tab, holding a session it started. */
  ext: Page
}

/**
 * Starts a relay, the PWA's profile and the extension's, and a session in
 * the extension's tab: Use for the relay it is offered, the app address in
 * its settings, and the PWA's profile trusting the relay once.
 */
export async function twoDevices(opened: Opened, pwaOptions: LaunchOptions = {}): Promise<TwoDevices> {
  const relay = (opened.relay = await startRelay())
  const pwa = (opened.pwa = await openPwa(pwaOptions))
  const extension = (opened.extension = await openExtension())
  const ext = await extension.page('kai', `?relay=${encodeURIComponent(relay.url)}`)
  await useOfferedRelay(ext, relay.url)
  await startSession(ext)
  await setAppAddress(ext, pwa.url)
  await trustRelay(pwa.profile, pwa.url, relay.url)
  return { relay, pwa, extension, ext }
}

/** Hands `page`'s session to another device through the handoff dialog and returns the resume link, the dialog closed. */
export async function handOff(
  page: Page,
  transfer: 'observe' | 'mirror' | 'takeover',
  opts: { to?: 'Browser' | 'Phone'; beforeClose?: (page: Page) => Promise<void> } = {},
): Promise<string> {
  await page.click('[data-testid=handoff]')
  await page.click(`[data-testid=handoff-dialog] [role=radio]:text("${opts.to ?? 'Browser'}")`)
  await page.click(`[data-testid=handoff-${transfer}]`)
  await page.waitForSelector('[data-testid=resume-link]', { timeout: 30_000 })
  await opts.beforeClose?.(page)
  const link = await page.inputValue('[data-testid=resume-link]')
  await page.click('[data-testid=handoff-dialog] button:text("Close")')
  return link
}

/** Opens a resume link in the PWA's profile and waits until the session shows. */
export async function openLink(pwa: Pwa, link: string): Promise<Page> {
  const page = await pwa.profile.newPage(link)
  await sessionReady(page)
  return page
}

/** Waits until the page's sync chip says `state` ("synced", "offline", …). */
export async function waitForStatus(page: Page, state: string, timeout = 30_000): Promise<void> {
  await page.waitForFunction((s) => document.querySelector('[data-testid=sync-status]')?.getAttribute('data-state') === s, state, { timeout })
}
