import { afterEach, describe, expect, it } from 'vitest'
import type { Page } from '@kai-sync/browser-harness'
import { launchChromium, type ChromiumProfile } from '@kai-sync/browser-harness'
import { startRelay, type SpawnedRelay } from './relay-harness'
import { expectNoPageErrors, openPwa, send, sessionReady, shownHistory, startSession, useOfferedRelay, waitForSettledHistory, type Pwa } from './web-harness'

// Addresses are never adopted from a URL unasked (issue 14): a crafted
// `?app=` must not redirect the links this device makes, a `?relay=` is
// asked about before any socket opens to it, and a `#kai=` link through
// an unfamiliar relay says so and spends nothing when declined. Real
// kai-relay processes, the built PWA in real Chromium profiles.

let relays: SpawnedRelay[] = []
let pwa: Pwa | undefined
let other: ChromiumProfile | undefined
afterEach(async () => {
  await other?.close()
  await pwa?.close()
  for (const r of relays) await r.close()
  relays = []
  pwa = other = undefined
})

async function relay(): Promise<SpawnedRelay> {
  const r = await startRelay()
  relays.push(r)
  return r
}

/** Every WebSocket the relay ever accepted (its metrics). */
async function connectionsTo(r: SpawnedRelay): Promise<number> {
  const text = await (await fetch(`${r.url.replace('ws:', 'http:')}/metrics`)).text()
  return Number(/^kai_relay_connections_total (\d+)$/m.exec(text)?.[1] ?? 0)
}

const storedRelay = (page: Page) => page.evaluate(() => localStorage.getItem('kai-sync.relay'))

const synced = (page: Page) =>
  page.waitForFunction(() => document.querySelector('[data-testid=sync-status]')?.getAttribute('data-state') === 'synced', undefined, { timeout: 30_000 })

/** Makes a handoff link in the dialog; returns it and the origin the dialog says it opens on. */
async function makeLink(page: Page, transfer: 'mirror' | 'observe' = 'mirror'): Promise<{ link: string; opens: string }> {
  await page.click('[data-testid=handoff]')
  await page.click('[data-testid=handoff-dialog] [role=radio]:text("Browser")')
  await page.click(`[data-testid=handoff-${transfer}]`)
  await page.waitForSelector('[data-testid=resume-link]', { timeout: 20_000 })
  const link = await page.inputValue('[data-testid=resume-link]')
  const opens = (await page.textContent('[data-testid=handoff-opens]')) ?? ''
  await page.click('[data-testid=handoff-dialog] button:text("Close")')
  return { link, opens }
}

describe('addresses are not adopted silently', () => {
  it('a PWA opened with ?app=https://evil.example/ links to its own origin, and the handoff dialog names it', async () => {
    const r = await relay()
    pwa = await openPwa()
    const origin = new URL(pwa.url).origin
    const page = await pwa.profile.newPage(`${pwa.url}?relay=${encodeURIComponent(r.url)}&app=${encodeURIComponent('https://evil.example/')}`)
    const noErrors = expectNoPageErrors(page)
    await useOfferedRelay(page, r.url)
    // Both leave the address bar; nothing of the app address is kept.
    expect(page.url()).toBe(pwa.url)
    expect(await page.evaluate(() => localStorage.getItem('kai-sync.app'))).toBeNull()
    await startSession(page)
    await send(page, 'Where does my link go?')
    await waitForSettledHistory(page, 2)
    await synced(page)
    const { link, opens } = await makeLink(page)
    expect(link.startsWith(`${pwa.url}#kai=`)).toBe(true)
    expect(link).not.toContain('evil')
    expect(opens).toBe(`Opens on ${origin}`)
    // A later load with the crafted address again changes nothing either.
    const again = await pwa.profile.newPage(`${pwa.url}?app=${encodeURIComponent('https://evil.example/')}`)
    await sessionReady(again)
    expect(await again.$('[data-testid=relay-offer]')).toBeNull()
    const second = await makeLink(again, 'observe')
    expect(second.link.startsWith(`${pwa.url}#kai=`)).toBe(true)
    expect(second.opens).toBe(`Opens on ${origin}`)
    noErrors()
  })

  it('a ?relay= that differs from the stored relay opens no socket until the person says Use; Ignore keeps the real relay', async () => {
    const real = await relay()
    const evil = await relay()
    pwa = await openPwa()
    const first = await pwa.profile.newPage(`${pwa.url}?relay=${encodeURIComponent(real.url)}`)
    await useOfferedRelay(first, real.url)
    const id = await startSession(first)
    await send(first, 'Through the relay I chose')
    await waitForSettledHistory(first, 2)
    await synced(first)
    await first.close()

    // A crafted address: the offer names the new relay, and nothing uses it meanwhile.
    const page = await pwa.profile.newPage(`${pwa.url}?relay=${encodeURIComponent(evil.url)}#/s/${id}`)
    const noErrors = expectNoPageErrors(page)
    const offer = await page.waitForSelector('[data-testid=relay-offer]')
    expect(await offer.getAttribute('data-relay')).toBe(evil.url)
    expect(await offer.textContent()).toContain(`Sync through ${evil.url}?`)
    expect(page.url()).not.toContain('relay=')
    await synced(page)
    expect(await storedRelay(page)).toBe(real.url)
    expect(await connectionsTo(evil)).toBe(0)

    await page.click('[data-testid=relay-offer-ignore]')
    await page.waitForSelector('[data-testid=relay-offer]', { state: 'detached' })
    await send(page, 'Still through the relay I chose')
    await waitForSettledHistory(page, 4)
    await synced(page)
    expect(await storedRelay(page)).toBe(real.url)
    expect(await connectionsTo(evil)).toBe(0)
    // The real relay holds it all: a new tab loading from it shows the four messages.
    await page.reload()
    await sessionReady(page)
    expect(await page.$('[data-testid=relay-offer]')).toBeNull()
    await waitForSettledHistory(page, 4)

    // Said Use, it is stored and used: the offer is the only way in.
    const agreed = await pwa.profile.newPage(`${pwa.url}?relay=${encodeURIComponent(evil.url)}#/s/${id}`)
    await useOfferedRelay(agreed, evil.url)
    expect(await storedRelay(agreed)).toBe(evil.url)
    await synced(agreed)
    expect(await connectionsTo(evil)).toBeGreaterThan(0)
    noErrors()
  })

  it('a #kai= link through a relay this device has not used says so; declined, it spends nothing and the same link opens the session after', async () => {
    const r = await relay()
    pwa = await openPwa()
    const source = await pwa.profile.newPage(`${pwa.url}?relay=${encodeURIComponent(r.url)}`)
    await useOfferedRelay(source, r.url)
    await startSession(source)
    await send(source, 'Only if you say so')
    await waitForSettledHistory(source, 2)
    await synced(source)
    const { link } = await makeLink(source)

    // Another browser profile, which has never synced through this relay.
    other = await launchChromium()
    const target = await other.newPage(link)
    const noErrors = expectNoPageErrors(target)
    await target.waitForSelector('[data-testid=resume-page][data-state=unfamiliar-relay]')
    expect(await target.textContent('[data-testid=resume-unfamiliar]')).toContain(`This link syncs through ${r.url}, which this device has not used`)
    // The secrets left the address bar even though nothing was accepted yet.
    expect(target.url()).not.toContain('#kai=')
    await target.click('[data-testid=resume-decline]')
    await target.waitForSelector('[data-testid=welcome-new]')
    expect(await target.evaluate(() => kaiApp.session)).toBeFalsy()
    expect(await storedRelay(target)).toBeNull()
    // Nothing was claimed: the invite is still pending on the source.
    await source.waitForTimeout(1000)
    await source.click('[data-testid=toggle-devices]')
    await source.waitForSelector('[data-testid=invite-row]')
    expect(await source.$$('[data-testid=device-row]')).toHaveLength(1)

    // The same link, accepted this time, opens the session.
    const again = await other.newPage(link)
    await again.waitForSelector('[data-testid=resume-page][data-state=unfamiliar-relay]')
    await again.click('[data-testid=resume-accept]')
    await sessionReady(again)
    await waitForSettledHistory(again, 2)
    expect(await shownHistory(again)).toEqual(await shownHistory(source))
    // Accepted, its relay is this device's now: a later link through it is not asked about.
    expect(await storedRelay(again)).toBe(r.url)
    noErrors()
  })
})
