import { afterEach, describe, expect, it } from 'vitest'
import type { Page } from '@kai-sync/browser-harness'
import { startRelay, type SpawnedRelay } from './relay-harness'
import {
  expectNoPageErrors,
  openExtension,
  openPwa,
  screenshot,
  send,
  sessionReady,
  setAppAddress,
  shownHistory,
  startSession,
  trustRelay,
  useOfferedRelay,
  waitForSettledHistory,
  type Pwa,
} from './web-harness'

// The Devices drawer: the owner (the extension) removes a browser profile
// that mirrored the session (the PWA in another Chromium profile), through
// a real kai-relay. The removed profile shows nothing written afterwards
// and says the relay refused it.

let relay: SpawnedRelay | undefined
let pwa: Pwa | undefined
let extension: Awaited<ReturnType<typeof openExtension>> | undefined
afterEach(async () => {
  await extension?.close()
  await pwa?.close()
  await relay?.close()
  extension = pwa = relay = undefined
})

/** The extension offered the relay by its address and told the PWA's address in its settings, with a session; the PWA's profile trusts the relay. */
async function configuredExtension(relay: SpawnedRelay, pwa: Pwa): Promise<Page> {
  const ext = await extension!.page('kai', `?relay=${encodeURIComponent(relay.url)}`)
  await useOfferedRelay(ext, relay.url)
  await startSession(ext)
  await setAppAddress(ext, pwa.url)
  await trustRelay(pwa.profile, pwa.url, relay.url)
  return ext
}

const status = (page: Page, state: string) =>
  page.waitForFunction((s) => document.querySelector('[data-testid=sync-status]')?.getAttribute('data-state') === s, state, { timeout: 30_000 })

describe('devices a person can manage, in the web app', () => {
  it('the owner removes a mirrored browser profile: it sees no new message and shows the relay\'s refusal', async () => {
    relay = await startRelay()
    pwa = await openPwa()
    extension = await openExtension()
    const ext = await configuredExtension(relay, pwa)
    const noErrors = expectNoPageErrors(ext)
    await send(ext, 'Before the removal')
    await waitForSettledHistory(ext, 2)
    await status(ext, 'synced')

    await ext.click('[data-testid=handoff]')
    await ext.click('[data-testid=handoff-dialog] [role=radio]:text("Browser")')
    await ext.click('[data-testid=handoff-mirror]')
    await ext.waitForSelector('[data-testid=resume-link]', { timeout: 20_000 })
    const link = await ext.inputValue('[data-testid=resume-link]')
    await ext.click('[data-testid=handoff-dialog] button:text("Close")')

    // The pending invite shows, with Cancel, until the link is used.
    await ext.click('[data-testid=toggle-devices]')
    await ext.waitForSelector('[data-testid=invite-row] [data-testid=cancel-invite]')
    const phone = await pwa.profile.newPage(link)
    await sessionReady(phone)
    await waitForSettledHistory(phone, 2)
    await status(phone, 'synced')
    await ext.waitForSelector('[data-testid=invite-row]', { state: 'detached', timeout: 30_000 })

    // The owner sees both devices, itself marked, and may remove only the other.
    const other = await ext.waitForSelector('[data-testid=device-row][data-self=false][data-role=writer]', { timeout: 30_000 })
    expect(await ext.$$('[data-testid=device-row][data-self=true] [data-testid=remove-device]')).toHaveLength(0)
    // The mirror is a writer, not the owner: it is offered no Remove at all.
    await phone.click('[data-testid=toggle-devices]')
    await phone.waitForSelector('[data-testid=device-row]')
    expect(await phone.$$('[data-testid=remove-device]')).toHaveLength(0)
    await screenshot(ext, 'devices-drawer')

    await (await other.$('[data-testid=remove-device]'))!.click()
    await ext.waitForSelector('[data-testid=device-row][data-role=removed]', { timeout: 30_000 })
    await status(phone, 'refused')
    await phone.click('[data-testid=sync-status]')
    expect(await phone.textContent('[data-testid=sync-detail]')).toMatch(/4403/)

    await send(ext, 'After the removal')
    await waitForSettledHistory(ext, 4)
    await status(ext, 'synced')
    await phone.waitForTimeout(2000)
    expect(await shownHistory(phone)).toEqual((await shownHistory(ext)).slice(0, 2))
    expect(await phone.evaluate(() => kaiApp.session!.engine.keys.epochs())).toEqual([0])
    await screenshot(phone, 'devices-removed')
    noErrors()
  })

  it('a link whose invite the owner cancelled opens nothing in another browser profile', async () => {
    relay = await startRelay()
    pwa = await openPwa()
    extension = await openExtension()
    const ext = await configuredExtension(relay, pwa)
    await send(ext, 'Nobody else')
    await waitForSettledHistory(ext, 2)
    await status(ext, 'synced')
    await ext.click('[data-testid=handoff]')
    await ext.click('[data-testid=handoff-dialog] [role=radio]:text("Browser")')
    await ext.click('[data-testid=handoff-observe]')
    await ext.waitForSelector('[data-testid=resume-link]', { timeout: 20_000 })
    const link = await ext.inputValue('[data-testid=resume-link]')
    await ext.click('[data-testid=handoff-dialog] button:text("Close")')

    await ext.click('[data-testid=toggle-devices]')
    await ext.click('[data-testid=invite-row] [data-testid=cancel-invite]')
    await ext.waitForSelector('[data-testid=invite-row]', { state: 'detached', timeout: 20_000 })
    await status(ext, 'synced')
    const devices = await ext.$$eval('[data-testid=device-row]', (els) => els.map((el) => el.getAttribute('data-device')))

    const stranger = await pwa.profile.newPage(link)
    await stranger.waitForSelector('[data-testid=resume-page][data-state=failed]', { timeout: 60_000 })
    expect(await stranger.textContent('[data-testid=resume-page] p')).toMatch(/^The invite was already used, cancelled, has expired.*Make a new link on your other device/)
    expect(await stranger.evaluate(() => kaiApp.session)).toBeFalsy()
    await ext.waitForTimeout(1000)
    expect(await ext.$$eval('[data-testid=device-row]', (els) => els.map((el) => el.getAttribute('data-device')))).toEqual(devices)
  })
})
