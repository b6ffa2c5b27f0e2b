import { describe, expect, it } from 'vitest'
import { startRelay } from './relay-harness'
import { closedAfterEach, waitForStatus } from './two-devices'
import { expectNoPageErrors, holdAppChunk, openPwa, send, sessionReady, shownHistory, startSession, statusOf, useOfferedRelay, waitForSettledHistory } from './web-harness'

// The app (engine, yjs, crypto, schemas) is a chunk behind a shell that
// draws the first frame (app-shell.tsx). The views only some people open
// (the drawers' contents, the handoff dialog) are chunks fetched apart from
// app.js (lazy-view.ts). A person
// offline must still open every one of them in the installed PWA, and a
// chunk that cannot be fetched must say so and load when opened again,
// not leave an empty drawer for good.

const opened = closedAfterEach()
const LONG = { timeout: 30_000 }

/** Each lazy view: how to open it, and what it shows once its code is there. */
const VIEWS = [
  { toggle: 'toggle-settings', shows: '[data-testid=config]' },
  { toggle: 'toggle-devices', shows: '[data-testid=devices]' },
  { toggle: 'toggle-audit', shows: '[data-testid=audit-log]' },
  { toggle: 'toggle-memory', shows: '[data-testid=memory]' },
] as const

describe('the app behind its shell', () => {
  it('draws its first frame before the app\'s code arrives, then the app takes over', async () => {
    // No service worker: the app chunk's request reaches the network, where this test holds it.
    const pwa = (opened.pwa = await openPwa({ blockServiceWorkers: true }))
    const page = await pwa.profile.context.newPage()
    const errors = expectNoPageErrors(page)
    const { release, held } = await holdAppChunk(page)
    await page.goto(pwa.url)
    await expect.poll(held, LONG).toBe(true)
    const opening = await page.waitForSelector('[data-testid=opening]', LONG)
    expect(await opening.textContent()).toBe('Opening…')
    expect(await page.$('[data-testid=welcome-new]')).toBeNull()
    release()
    await startSession(page)
    errors()
  })

  it('says so when the app\'s code cannot be fetched', async () => {
    const pwa = (opened.pwa = await openPwa({ blockServiceWorkers: true }))
    const page = await pwa.profile.context.newPage()
    await page.route('**/chunks/app-*.js', (route) => route.abort('internetdisconnected'))
    await page.goto(pwa.url)
    const failed = await page.waitForSelector('[data-testid=app-load-failed]', LONG)
    expect(await failed.textContent()).toMatch(/^The app could not be loadedIts code did not arrive \(.+\)\. Check the connection and reload the page\.$/)
  })
})

describe('the lazily loaded views', () => {
  it('offline, in a reloaded PWA, every one of them opens from the service worker', async () => {
    const pwa = (opened.pwa = await openPwa())
    const page = await pwa.profile.newPage(pwa.url)
    const errors = expectNoPageErrors(page)
    await startSession(page)
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, LONG)
    await pwa.profile.context.setOffline(true)
    // A reload forgets the chunks this page already ran: each must come from the cache now.
    await page.reload()
    await sessionReady(page)
    expect(await statusOf(page)).toBe('offline')
    for (const view of VIEWS) {
      await page.click(`[data-testid=${view.toggle}]`)
      await page.waitForSelector(view.shows, LONG)
      expect(await page.$('[data-testid=view-load-failed]')).toBeNull()
      await page.click(`[data-testid=${view.toggle}]`)
    }
    // The demo agent is a chunk too: it answers offline.
    await send(page, 'still here?')
    await waitForSettledHistory(page, 2)
    await page.click('[data-testid=handoff]')
    await page.waitForSelector('[data-testid=handoff-dialog]', LONG)
    errors()
  })

  it('a view whose code cannot be fetched says so, and opens when it is opened again once it can', async () => {
    // No service worker: every chunk request reaches the network, where this test cuts one.
    const pwa = (opened.pwa = await openPwa({ blockServiceWorkers: true }))
    const page = await pwa.profile.context.newPage()
    const errors = expectNoPageErrors(page)
    let reachable = false
    await page.route('**/chunks/audit-log-*.js', (route) => (reachable ? route.continue() : route.abort('internetdisconnected')))
    await page.goto(pwa.url)
    await startSession(page)
    await page.click('[data-testid=toggle-audit]')
    const failed = await page.waitForSelector('[data-testid=view-load-failed]', LONG)
    expect(await failed.textContent()).toMatch(/^This part of the app could not be loaded \(.+\)\. Check the connection and open it again\.$/)
    // The rest of the app works meanwhile.
    await page.click('[data-testid=toggle-settings]')
    await page.waitForSelector('[data-testid=config]', LONG)

    reachable = true
    await page.click('[data-testid=toggle-audit]')
    await page.waitForSelector('[data-testid=audit-log]', LONG)
    expect(await page.$('[data-testid=view-load-failed]')).toBeNull()
    errors()
  })

  it('the demo agent, whose code arrives after the composer, says when it cannot be fetched and answers once it can', async () => {
    const pwa = (opened.pwa = await openPwa({ blockServiceWorkers: true }))
    const page = await pwa.profile.context.newPage()
    const errors = expectNoPageErrors(page)
    let reachable = false
    await page.route('**/chunks/demo-agent-*.js', (route) => (reachable ? route.continue() : route.abort('internetdisconnected')))
    await page.goto(pwa.url)
    await startSession(page)
    // Typing and sending work without it; the message is kept, unanswered, and the page says why.
    await send(page, 'hello there')
    const failed = await page.waitForSelector('[data-testid=demo-load-failed]', LONG)
    expect(await failed.textContent()).toMatch(/^The demo agent could not be loaded \(.+\), so it cannot answer yet\. Check the connection: it answers the next message you send once its code arrives\.$/)
    expect(await shownHistory(page)).toEqual(['user: hello there'])

    reachable = true
    await send(page, 'and now')
    await waitForSettledHistory(page, 3)
    expect((await shownHistory(page)).slice(0, 2)).toEqual(['user: hello there', 'user: and now'])
    expect(await page.$('[data-testid=demo-load-failed]')).toBeNull()
    errors()
  })

  it('a session whose relay link cannot be fetched opens, takes typing and says the relay is offline; opened again once it can, it syncs', async () => {
    const relay = (opened.relay = await startRelay())
    const pwa = (opened.pwa = await openPwa({ blockServiceWorkers: true }))
    const page = await pwa.profile.context.newPage()
    const errors = expectNoPageErrors(page)
    let reachable = false
    // The link (relay-connector.ts loads relay-link.ts with a session's first connection).
    await page.route('**/chunks/relay-link-*.js', (route) => (reachable ? route.continue() : route.abort('internetdisconnected')))
    await page.goto(`${pwa.url}?relay=${encodeURIComponent(relay.url)}`)
    await useOfferedRelay(page, relay.url)
    await startSession(page)
    await send(page, 'hello there')
    await waitForSettledHistory(page, 2)
    await waitForStatus(page, 'offline')
    expect(await page.textContent('[data-testid=sync-status]')).toBe('Relay offline')

    reachable = true
    await page.reload()
    await sessionReady(page)
    await waitForStatus(page, 'synced')
    expect(await shownHistory(page)).toEqual(['user: hello there', expect.stringMatching(/^agent: /)])
    errors()
  })
})
