import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
import type { Page } from '@kai-sync/browser-harness'
import { launchChromium, serveStatic, type ChromiumProfile, type LaunchOptions, type StaticServer } from '@kai-sync/browser-harness'
import type { KaiDebug } from '../src/app'

const app = fileURLToPath(new URL('..', import.meta.url))
export const PWA_DIR = join(app, 'dist/pwa')
export const EXTENSION_DIR = join(app, 'dist/extension')
/** Screenshots of each mode, kept as test artifacts (gitignored). */
export const SCREENSHOTS = join(app, '../../test-results/screenshots')

declare global {
  /** The running app's device and open session (src/app.tsx). */
  var kaiApp: KaiDebug
}

export interface Pwa {
  profile: ChromiumProfile
  url: string
  close(): Promise<void>
}

/** The built PWA on loopback, in a fresh Chromium profile. */
export async function openPwa(options: LaunchOptions = {}): Promise<Pwa> {
  const server: StaticServer = await serveStatic({ dir: PWA_DIR })
  const profile = await launchChromium(options)
  return {
    profile,
    url: `${server.url}/`,
    async close() {
      await profile.close()
      await server.close()
    },
  }
}

/** The built extension loaded unpacked; its pages open as tabs (they share its origin). */
/** The extension's profile, and its pages by name. */
export type Extension = ChromiumProfile & { page(name: 'popup' | 'kai' | 'panel', hash?: string): Promise<Page> }

export async function openExtension(): Promise<Extension> {
  const profile = await launchChromium({ extension: EXTENSION_DIR })
  return Object.assign(profile, {
    async page(name: 'popup' | 'kai' | 'panel', hash = '') {
      const page = await profile.newPage(`chrome-extension://${profile.extensionId}/${name}.html${hash}`)
      // The popup and side panel are narrow: show their pages at their real size.
      if (name === 'popup') await page.setViewportSize({ width: 360, height: 600 })
      if (name === 'panel') await page.setViewportSize({ width: 400, height: 760 })
      return page
    },
  })
}

/**
 * Answers the relay offer a page opened with `?relay=` shows (the app
 * never adopts an address from a URL unasked): Use, and waits for it to go.
 */
export async function useOfferedRelay(page: Page, relayUrl: string): Promise<void> {
  const offer = await page.waitForSelector('[data-testid=relay-offer]')
  expect(await offer.getAttribute('data-relay')).toBe(relayUrl)
  await page.click('[data-testid=relay-offer-use]')
  await page.waitForSelector('[data-testid=relay-offer]', { state: 'detached' })
}

/** The person's one confirmation in a profile: opens the app with `?relay=` and says Use, so its links open without asking. */
export async function trustRelay(profile: ChromiumProfile, appUrl: string, relayUrl: string): Promise<void> {
  const page = await profile.newPage(`${appUrl}?relay=${encodeURIComponent(relayUrl)}`)
  await useOfferedRelay(page, relayUrl)
  await page.close()
}

/**
 * Sets where the extension's handoff links open (the PWA's address), as a
 * person does: in the handoff dialog's settings, then confirmed. Needs an
 * open session.
 */
export async function setAppAddress(page: Page, appUrl: string): Promise<void> {
  await page.click('[data-testid=handoff]')
  await page.click('[data-testid=edit-relay]')
  await page.fill('[data-testid=app-url]', appUrl)
  await page.click('[data-testid=save-relay]')
  await page.click('[data-testid=confirm-app]')
  await page.click('[data-testid=handoff-dialog] button:text("Close")')
}

/**
 * Holds the app's chunk (engine, yjs, crypto) back from `page` until
 * `release()`, so a test acts while only the shell has run. Through the
 * DevTools protocol's request interception, which also reaches an
 * extension's pages (Playwright's page.route sees only http). Needs a
 * profile without service workers (`blockServiceWorkers`), else the request
 * is the worker's and never reaches the page.
 */
export async function holdAppChunk(page: Page): Promise<{ release: () => void; held: () => boolean }> {
  let release!: () => void
  const released = new Promise<void>((r) => (release = r))
  let held = false
  const cdp = await page.context().newCDPSession(page)
  cdp.on('Fetch.requestPaused', ({ requestId }: { requestId: string }) => {
    held = true
    void released.then(() => cdp.send('Fetch.continueRequest', { requestId }).catch(() => {}))
  })
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: '*/chunks/app-*.js' }] })
  return { release, held: () => held }
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true })
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) })
}

/** Starts a session from the welcome screen and returns its id. */
export async function startSession(page: Page): Promise<string> {
  await page.click('[data-testid=welcome-new]')
  await page.waitForSelector('[data-testid=composer]')
  return page.evaluate(() => kaiApp.session!.sessionId)
}

/** Waits until the page shows the session (composer ready, presence published). */
export async function sessionReady(page: Page): Promise<void> {
  await page.waitForSelector('[data-testid=composer]')
  await page.waitForSelector('[data-testid=presence] [data-self=true]')
}

export async function send(page: Page, text: string): Promise<void> {
  await page.fill('[data-testid=composer]', text)
  await page.press('[data-testid=composer]', 'Enter')
}

/** The history as shown: `role: text` per message, in display order. */
export function shownHistory(page: Page): Promise<string[]> {
  return page.$$eval('[data-testid=history] .message', (els) =>
    els.map((el) => `${el.classList.contains('user') ? 'user' : 'agent'}: ${el.querySelector('.content')?.textContent ?? ''}`),
  )
}

/** Waits for `count` messages, none still streaming; on timeout, says what was shown. */
export async function waitForSettledHistory(page: Page, count: number): Promise<void> {
  try {
    await page.waitForFunction(
      (n) => {
        const els = document.querySelectorAll('[data-testid=history] .message')
        return els.length === n && [...els].every((el) => el.getAttribute('data-status') === 'complete')
      },
      count,
      { timeout: 20_000 },
    )
  } catch (e) {
    const shown = await page.$$eval('[data-testid=history] .message', (els) => els.map((el) => `${el.getAttribute('data-status')} ${el.textContent?.slice(0, 40)}`))
    const inDoc = await page.evaluate(() => kaiApp.session?.engine.session.messages().map((m) => `${m.status} ${m.content.slice(0, 40)}`))
    throw new Error(`expected ${count} settled messages; shown: ${JSON.stringify(shown)}; in the session: ${JSON.stringify(inDoc)}`, { cause: e })
  }
}

/** Peers shown in the presence bar: `mode` plus ` (closing)` / ` (you)`. */
export function shownPresence(page: Page): Promise<string[]> {
  return page.$$eval('[data-testid=presence] .peer', (els) =>
    els.map((el) => `${el.getAttribute('data-mode')}${el.getAttribute('data-self') === 'true' ? ' (you)' : ''}${el.getAttribute('data-closing') === 'true' ? ' (closing)' : ''}`),
  )
}

export async function statusOf(page: Page): Promise<string | null> {
  return page.getAttribute('[data-testid=sync-status]', 'data-state')
}

export function expectNoPageErrors(page: Page): () => void {
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  return () => expect(errors).toEqual([])
}
