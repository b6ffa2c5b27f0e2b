import { describe, expect, it } from 'vitest'
import type { LaunchOptions, Page } from '@kai-sync/browser-harness'
import { checkView } from './a11y-checks'
import { closedAfterEach, handOff, openLink, twoDevices } from './two-devices'
import { expectNoPageErrors, holdAppChunk, openExtension, openPwa, send, sessionReady, shownHistory, startSession, waitForSettledHistory, type Pwa } from './web-harness'

// A returning person can write before the session is open (issue 16): the
// shell draws the session this browser last showed with a composer that
// takes typing and sending (src/early/), while the app's code (engine, yjs,
// crypto) still arrives. What is sent then must reach the session once,
// answered like any message; what is typed must carry over with the focus;
// and what waits on disk is sealed. Each test holds the app's chunk back
// (no service worker, so the request reaches the page's route) to be sure
// the person acts before the app is there.

const opened = closedAfterEach()
const LONG = { timeout: 30_000 }

/** A page of the profile whose app chunk is held until `release()`. */
async function heldPage(pwa: Pwa): Promise<{ page: Page; release: () => void; held: () => boolean }> {
  const page = await pwa.profile.context.newPage()
  return { page, ...(await holdAppChunk(page)) }
}

/** The outbox's records as stored (src/early/early-outbox.ts), with what a reader of the disk would see. */
function storedOutbox(page: Page): Promise<{ sessionId: string; bytes: number[] }[]> {
  return page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const req = indexedDB.open('kai-early')
        req.onerror = () => reject(req.error)
        req.onsuccess = () => {
          const db = req.result
          if (!db.objectStoreNames.contains('outbox')) return resolve([])
          const all = db.transaction('outbox').objectStore('outbox').getAll()
          all.onsuccess = () => {
            resolve((all.result as { sessionId: string; sealed: ArrayBuffer }[]).map((r) => ({ sessionId: r.sessionId, bytes: [...new Uint8Array(r.sealed)] })))
            db.close()
          }
        }
      }),
  )
}

const contains = (haystack: number[], text: string) => Buffer.from(haystack).includes(Buffer.from(text))

/** A profile with one session, shown once, so the next page opens it. */
async function returning(options: LaunchOptions = {}): Promise<{ pwa: Pwa; first: Page; id: string }> {
  const pwa = (opened.pwa = await openPwa({ blockServiceWorkers: true, ...options }))
  const first = await pwa.profile.newPage(pwa.url)
  const id = await startSession(first)
  await send(first, 'Plan a weekend in Porto')
  await waitForSettledHistory(first, 2)
  await first.waitForFunction(() => localStorage.getItem('kai-last-session') !== null)
  return { pwa, first, id }
}

describe('the composer before the session is open', () => {
  it('takes a message before the app arrives; the session gets it once, answered, and typing goes on in the same box', async () => {
    const { pwa, first, id } = await returning()
    const { page, release, held } = await heldPage(pwa)
    const errors = expectNoPageErrors(page)
    await page.goto(pwa.url)
    await expect.poll(held, LONG).toBe(true)
    const box = await page.waitForSelector('[data-testid=early-composer]:not([disabled])', LONG)
    expect(await page.$('[data-testid=composer]')).toBeNull()
    await box.fill('And in Braga?')
    await box.press('Enter')
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=early-message] .content')].map((e) => e.textContent).join('|') === 'And in Braga?', undefined, LONG).catch(async (e) => {
      throw new Error(`shown: ${await page.evaluate(() => document.querySelector('main')?.outerHTML)}`, { cause: e })
    })
    expect(await box.inputValue()).toBe('')
    // Still typing when the app takes over.
    await box.type('half a tho')
    release()
    await sessionReady(page)
    expect(page.url()).toBe(`${pwa.url}#/s/${id}`)
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-testid'))).toBe('composer')
    await page.keyboard.type('ught')
    expect(await page.inputValue('[data-testid=composer]')).toBe('half a thought')
    await waitForSettledHistory(page, 4)
    const history = await shownHistory(page)
    expect(history.filter((m) => m === 'user: And in Braga?')).toHaveLength(1)
    expect(history[2]).toBe('user: And in Braga?')
    // The demo agent answered it, as any message.
    expect(history[3]).toMatch(/^agent: .+/)
    // The other tab sees it once too, and the outbox is empty.
    await waitForSettledHistory(first, 4)
    expect((await shownHistory(first)).filter((m) => m === 'user: And in Braga?')).toHaveLength(1)
    await expect.poll(() => storedOutbox(page), LONG).toEqual([])
    errors()
  })

  it('keeps a message sealed on disk across a reload before the app arrived, and sends it once', async () => {
    const { pwa, first, id } = await returning()
    await first.close()
    const { page, release } = await heldPage(pwa)
    await page.goto(pwa.url)
    const box = await page.waitForSelector('[data-testid=early-composer]:not([disabled])', LONG)
    await box.fill('Book the 9:40 train')
    await box.press('Enter')
    // On disk, sealed: the text is not in what is stored, and the key cannot be read out.
    await expect.poll(async () => (await storedOutbox(page)).length, LONG).toBe(1)
    const [record] = await storedOutbox(page)
    expect(record!.sessionId).toBe(id)
    expect(contains(record!.bytes, 'Book the 9:40 train')).toBe(false)
    expect(
      await page.evaluate(
        () =>
          new Promise((resolve) => {
            const req = indexedDB.open('kai-early')
            req.onsuccess = () => {
              const get = req.result.transaction('key').objectStore('key').get('k')
              get.onsuccess = () => resolve((get.result as CryptoKey).extractable)
            }
          }),
      ),
    ).toBe(false)
    // The page goes away before the session opened; the app chunk is still held.
    await page.reload()
    await page.waitForSelector('[data-testid=early-composer]', LONG)
    // The reloaded shell shows it, still coming.
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=early-message] .content')].map((e) => e.textContent).join('|') === 'Book the 9:40 train', undefined, LONG)
    release()
    await sessionReady(page)
    await waitForSettledHistory(page, 4)
    expect((await shownHistory(page)).filter((m) => m === 'user: Book the 9:40 train')).toHaveLength(1)
    await expect.poll(() => storedOutbox(page), LONG).toEqual([])
    // Reopened again: nothing is sent twice.
    await page.reload()
    await sessionReady(page)
    await waitForSettledHistory(page, 4)
  })

  it('two tabs opening the session at once, each with a message sent early: each message once, in both', async () => {
    const { pwa, first, id } = await returning()
    await first.close()
    const a = await heldPage(pwa)
    const b = await heldPage(pwa)
    await Promise.all([a.page.goto(pwa.url), b.page.goto(pwa.url)])
    for (const [{ page }, text] of [
      [a, 'From tab A'],
      [b, 'From tab B'],
    ] as const) {
      const box = await page.waitForSelector('[data-testid=early-composer]:not([disabled])', LONG)
      await box.fill(text)
      await box.press('Enter')
    }
    await expect.poll(async () => (await storedOutbox(a.page)).length, LONG).toBe(2)
    // Delivery runs under the session's Web Lock, so two pages never read the
    // outbox and append at once: while another holder keeps it, neither
    // page's session takes the messages.
    await a.page.evaluate((id) => {
      void navigator.locks.request(`kai-sync/early/${id}`, () => new Promise<void>((r) => Object.assign(globalThis, { unlock: r })))
    }, id)
    a.release()
    b.release()
    for (const { page } of [a, b]) {
      await sessionReady(page)
      await waitForSettledHistory(page, 2)
    }
    await new Promise((r) => setTimeout(r, 1_000))
    for (const { page } of [a, b]) expect(await shownHistory(page)).toHaveLength(2)
    await a.page.evaluate(() => (globalThis as unknown as { unlock: () => void }).unlock())
    for (const { page } of [a, b]) {
      await sessionReady(page)
      await waitForSettledHistory(page, 6)
      const history = await shownHistory(page)
      expect(history.filter((m) => m === 'user: From tab A')).toHaveLength(1)
      expect(history.filter((m) => m === 'user: From tab B')).toHaveLength(1)
    }
    await expect.poll(() => storedOutbox(a.page), LONG).toEqual([])
  })

  it('a record that does not open is said, left where it is, and nothing is sent for it', async () => {
    const { pwa, first, id } = await returning()
    await first.close()
    const { page, release } = await heldPage(pwa)
    await page.goto(pwa.url)
    const box = await page.waitForSelector('[data-testid=early-composer]:not([disabled])', LONG)
    await box.fill('A real one')
    await box.press('Enter')
    await expect.poll(async () => (await storedOutbox(page)).length, LONG).toBe(1)
    // A damaged record beside it: its sealed bytes flipped.
    await page.evaluate(
      (sessionId) =>
        new Promise<void>((resolve) => {
          const req = indexedDB.open('kai-early')
          req.onsuccess = () => {
            const tx = req.result.transaction('outbox', 'readwrite')
            tx.objectStore('outbox').put({ id: 'm-damaged', sessionId, iv: new Uint8Array(12), sealed: new Uint8Array(40).buffer })
            tx.oncomplete = () => resolve()
          }
        }),
      id,
    )
    release()
    await sessionReady(page)
    const notice = await page.waitForSelector('[data-testid=early-unsent]', LONG)
    expect(await notice.getAttribute('data-unreadable')).toBe('1')
    expect(await notice.textContent()).toContain('could not be read back on this device')
    await waitForSettledHistory(page, 4)
    expect((await shownHistory(page)).filter((m) => m.startsWith('user: '))).toEqual(['user: Plan a weekend in Porto', 'user: A real one'])
    await expect.poll(async () => (await storedOutbox(page)).map((r) => r.sessionId), LONG).toEqual([id])
  })

  it('on a 390×844 phone, the session before it opens passes axe, has 44 px targets and nothing cut off', async () => {
    const { pwa, first } = await returning({ mobile: true, viewport: { width: 390, height: 844 } })
    await first.close()
    const { page, release } = await heldPage(pwa)
    await page.goto(pwa.url)
    const box = await page.waitForSelector('[data-testid=early-composer]:not([disabled])', LONG)
    await box.fill('Sent from the phone before the app was there')
    await box.press('Enter')
    await page.waitForSelector('[data-testid=early-message]', LONG)
    expect(await checkView(page, 'phone-early-session', { touch: true })).toEqual({ axe: [], small: [], cut: [] })
    release()
    await sessionReady(page)
  })

  it('in the 360-pixel popup, the session before it opens passes axe, has 44 px targets and nothing cut off, and what is sent there arrives once', async () => {
    const extension = (opened.extension = await openExtension())
    const kai = await extension.page('kai')
    await startSession(kai)
    await send(kai, 'Plan a weekend in Porto')
    await waitForSettledHistory(kai, 2)
    await kai.waitForFunction(() => localStorage.getItem('kai-last-session') !== null)
    const page = await extension.context.newPage()
    await page.setViewportSize({ width: 360, height: 600 })
    const { release, held } = await holdAppChunk(page)
    await page.goto(`chrome-extension://${extension.extensionId}/popup.html`)
    await expect.poll(held, LONG).toBe(true)
    const box = await page.waitForSelector('[data-testid=early-composer]:not([disabled])', LONG)
    await box.fill('Sent from the popup before the app was there')
    await box.press('Enter')
    await page.waitForSelector('[data-testid=early-message]', LONG)
    expect(await page.$('[data-testid=composer]')).toBeNull()
    expect(await checkView(page, 'popup-early-session', { touch: true })).toEqual({ axe: [], small: [], cut: [] })
    release()
    await sessionReady(page)
    await waitForSettledHistory(kai, 4)
    expect((await shownHistory(kai)).filter((m) => m === 'user: Sent from the popup before the app was there')).toHaveLength(1)
  })

  it('a session this device may only read, as last seen: the composer before it opens takes no typing', async () => {
    const { pwa, first, id } = await returning()
    await first.evaluate((id) => localStorage.setItem('kai-last-session', JSON.stringify({ id, canWrite: false })), id)
    await first.close()
    const { page, release } = await heldPage(pwa)
    await page.goto(pwa.url)
    const box = await page.waitForSelector('[data-testid=early-composer]', LONG)
    expect(await box.isDisabled()).toBe(true)
    expect(await box.getAttribute('placeholder')).toBe('This device may only read this session')
    release()
    await sessionReady(page)
    // The session view knows better (this device writes it) and says so for the next page.
    await expect.poll(() => page.evaluate(() => localStorage.getItem('kai-last-session')), LONG).toBe(JSON.stringify({ id, canWrite: true }))
  })

  it('a device last seen writing that may now only read: what it sent before the session opened is not sent, is shown with its text, and stays until discarded', async () => {
    const { pwa, ext } = await twoDevices(opened, { blockServiceWorkers: true })
    const reader = await openLink(pwa, await handOff(ext, 'observe'))
    const id = await reader.evaluate(() => kaiApp.session!.sessionId)
    await reader.waitForSelector('[data-testid=read-only]')
    // The hint is the only thing the shell knows: say this device wrote
    // the session when last seen (a writer demoted since, or a stale page).
    await expect.poll(() => reader.evaluate(() => localStorage.getItem('kai-last-session')), LONG).toBe(JSON.stringify({ id, canWrite: false }))
    await reader.evaluate((id) => localStorage.setItem('kai-last-session', JSON.stringify({ id, canWrite: true })), id)
    await reader.close()
    const { page, release } = await heldPage(pwa)
    await page.goto(pwa.url)
    const box = await page.waitForSelector('[data-testid=early-composer]:not([disabled])', LONG)
    await box.fill('Cancel the hotel')
    await box.press('Enter')
    await expect.poll(async () => (await storedOutbox(page)).length, LONG).toBe(1)
    release()
    await sessionReady(page)
    const notice = await page.waitForSelector('[data-testid=early-unsent]', LONG)
    expect(await notice.getAttribute('data-refused')).toBe('1')
    expect(await notice.textContent()).toContain('this device may only read this session')
    expect(await notice.textContent()).toContain('Cancel the hotel')
    expect(await page.$('[data-testid=composer]:not([disabled])')).toBeNull()
    // Nowhere in the session, here or on the device that writes it.
    await send(ext, 'Still there?')
    await expect.poll(async () => (await shownHistory(ext)).includes('user: Still there?'), LONG).toBe(true)
    await expect.poll(async () => (await shownHistory(page)).includes('user: Still there?'), LONG).toBe(true)
    expect((await shownHistory(page)).some((m) => m.includes('Cancel the hotel'))).toBe(false)
    expect((await shownHistory(ext)).some((m) => m.includes('Cancel the hotel'))).toBe(false)
    // Kept until the person discards it: a reload shows it again.
    expect(await storedOutbox(page)).toHaveLength(1)
    await page.reload()
    await sessionReady(page)
    await page.waitForSelector('[data-testid=early-unsent][data-refused="1"]', LONG)
    await page.click('[data-testid=discard-unsent]')
    await page.waitForSelector('[data-testid=early-unsent]', { state: 'detached', ...LONG })
    await expect.poll(() => storedOutbox(page), LONG).toEqual([])
  })

  it('a first visit has no session to draw: the shell says it is opening, and the app shows the welcome', async () => {
    const pwa = (opened.pwa = await openPwa({ blockServiceWorkers: true }))
    const { page, release, held } = await heldPage(pwa)
    await page.goto(pwa.url)
    await expect.poll(held, LONG).toBe(true)
    await page.waitForSelector('[data-testid=opening]', LONG)
    expect(await page.$('[data-testid=early-composer]')).toBeNull()
    release()
    await page.waitForSelector('[data-testid=welcome-new]', LONG)
  })
})
