import { afterEach, describe, expect, it } from 'vitest'
import type { Page } from '@kai-sync/browser-harness'
import { launchChromium, type ChromiumProfile } from '@kai-sync/browser-harness'
import { startRelay, type SpawnedRelay } from './relay-harness'
import { expectNoPageErrors, openPwa, send, sessionReady, startSession, trustRelay, useOfferedRelay, waitForSettledHistory, type Pwa } from './web-harness'

// Leaving a session in the web app (issue 14): the session goes from this
// browser profile (keys, volatile state, list entry, wire doc), stays gone
// after the profile is reopened, and a writer that leaves shows as removed
// on the owner's device. Two Chromium profiles, one real kai-relay.

let relay: SpawnedRelay | undefined
let pwa: Pwa | undefined
let phone: ChromiumProfile | undefined
afterEach(async () => {
  await phone?.close()
  await pwa?.close()
  await relay?.close()
  pwa = phone = relay = undefined
})

const synced = (page: Page) =>
  page.waitForFunction(() => document.querySelector('[data-testid=sync-status]')?.getAttribute('data-state') === 'synced', undefined, { timeout: 30_000 })

/** What this origin stores of `id`: its wire database, key records, volatile records and list entry. */
function storedOf(page: Page, id: string): Promise<{ wireDb: boolean; keys: number; volatile: number; listed: boolean }> {
  return page.evaluate(async (id) => {
    const dbs = await indexedDB.databases()
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open('kai-sync')
      r.onsuccess = () => resolve(r.result)
      r.onerror = () => reject(r.error)
    })
    const count = (store: string, range: IDBKeyRange) =>
      new Promise<number>((resolve, reject) => {
        const r = db.transaction(store, 'readonly').objectStore(store).count(range)
        r.onsuccess = () => resolve(r.result)
        r.onerror = () => reject(r.error)
      })
    const result = {
      wireDb: dbs.some((d) => d.name === `kai-sync/wire/${id}`),
      keys: await count('keys', IDBKeyRange.bound([id, -Infinity], [id, Infinity])),
      volatile: await count('volatile', IDBKeyRange.bound([id, ''], [id, '\uffff'])),
      listed: (await count('catalog', IDBKeyRange.only(id))) > 0,
    }
    db.close()
    return result
  }, id)
}

describe('leaving a session in the web app', () => {
  it('a mirrored profile leaves: its copy, keys and list entry are gone (also after reopening the profile), and the owner sees it removed', async () => {
    relay = await startRelay()
    pwa = await openPwa()
    const owner = await pwa.profile.newPage(`${pwa.url}?relay=${encodeURIComponent(relay.url)}`)
    await useOfferedRelay(owner, relay.url)
    const id = await startSession(owner)
    await send(owner, 'Shared with the phone')
    await waitForSettledHistory(owner, 2)
    await synced(owner)
    await owner.click('[data-testid=handoff]')
    await owner.click('[data-testid=handoff-dialog] [role=radio]:text("Browser")')
    await owner.click('[data-testid=handoff-mirror]')
    const link = await (await owner.waitForSelector('[data-testid=resume-link]', { timeout: 20_000 })).inputValue()
    await owner.click('[data-testid=handoff-dialog] button:text("Close")')

    phone = await launchChromium()
    await trustRelay(phone, pwa.url, relay.url)
    const page = await phone.newPage(link)
    const noErrors = expectNoPageErrors(page)
    await sessionReady(page)
    await waitForSettledHistory(page, 2)
    await synced(page)
    // A second tab of the phone's profile has the session open too: it must let go.
    const tab = await phone.newPage(`${pwa.url}#/s/${id}`)
    await sessionReady(tab)
    await page.fill('[data-testid=composer]', 'a draft kept at rest')
    await page.evaluate(() => kaiApp.session!.whenSaved())
    const before = await storedOf(page, id)
    expect(before).toMatchObject({ wireDb: true, listed: true })
    expect(before.keys).toBeGreaterThan(0)
    expect(before.volatile).toBeGreaterThan(0)
    await owner.click('[data-testid=toggle-devices]')
    await owner.waitForSelector('[data-testid=device-row][data-self=false][data-role=writer]', { timeout: 30_000 })

    await page.click('[data-testid=toggle-devices]')
    await page.click('[data-testid=leave-session]')
    // Asked first: Cancel keeps everything.
    await page.waitForSelector('[data-testid=leave-confirm]')
    await page.click('[data-testid=leave-confirm] button:text("Cancel")')
    expect(await storedOf(page, id)).toMatchObject({ wireDb: true, keys: before.keys, listed: true })
    await page.click('[data-testid=leave-session]')
    await page.click('[data-testid=confirm-leave]')
    const notice = await page.waitForSelector('[data-testid=left-notice]', { timeout: 30_000 })
    expect(await notice.getAttribute('data-roster')).toBe('stepped_out')
    await page.waitForSelector('[data-testid=welcome-new]')
    expect(await page.$(`[data-testid=session-list] [data-session-id="${id}"]`)).toBeNull()
    await tab.waitForSelector('[data-testid=problem][data-code=not_found]', { timeout: 20_000 })
    await page.waitForFunction((id) => indexedDB.databases().then((dbs) => !dbs.some((d) => d.name === `kai-sync/wire/${id}`)), id, { timeout: 20_000 })
    expect(await storedOf(page, id)).toEqual({ wireDb: false, keys: 0, volatile: 0, listed: false })

    // The owner's roster says the phone left; the owner still writes.
    await owner.waitForSelector('[data-testid=device-row][data-self=false][data-role=removed]', { timeout: 30_000 })
    await send(owner, 'After the phone left')
    await waitForSettledHistory(owner, 4)
    await synced(owner)
    noErrors()

    // The profile reopened: the session does not come back.
    const root = phone.root
    await phone.context.close()
    phone = await launchChromium({ root })
    const reopened = await phone.newPage(pwa.url)
    await reopened.waitForSelector('[data-testid=welcome-new]')
    expect(await storedOf(reopened, id)).toEqual({ wireDb: false, keys: 0, volatile: 0, listed: false })
    const direct = await phone.newPage(`${pwa.url}#/s/${id}`)
    await direct.waitForSelector('[data-testid=problem][data-code=not_found]')
  })

  it('the owner leaves: the session is gone from its profile, the roster keeps it as owner', async () => {
    pwa = await openPwa()
    const page = await pwa.profile.newPage(pwa.url)
    const id = await startSession(page)
    await send(page, 'Only here')
    await waitForSettledHistory(page, 2)
    await page.click('[data-testid=toggle-devices]')
    await page.click('[data-testid=leave-session]')
    expect(await page.textContent('[data-testid=leave-confirm]')).toContain('This device owns it')
    await page.click('[data-testid=confirm-leave]')
    expect(await (await page.waitForSelector('[data-testid=left-notice]')).getAttribute('data-roster')).toBe('owner')
    await page.waitForSelector('[data-testid=welcome-new]')
    await page.reload()
    await page.waitForSelector('[data-testid=welcome-new]')
    expect(await storedOf(page, id)).toEqual({ wireDb: false, keys: 0, volatile: 0, listed: false })
  })
})
