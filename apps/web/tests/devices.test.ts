import { describe, expect, it } from 'vitest'
import { closedAfterEach, handOff, twoDevices, waitForStatus as status } from './two-devices'
import {
  expectNoPageErrors,
  screenshot,
  send,
  sessionReady,
  shownHistory,
  waitForSettledHistory,
} from './web-harness'

// The Devices drawer: the owner (the extension) removes a browser profile
// that mirrored the session (the PWA in another Chromium profile), through
// a real kai-relay. The removed profile shows nothing written afterwards
// and says the relay refused it.

const opened = closedAfterEach()

describe('devices a person can manage, in the web app', () => {
  it('the owner removes a mirrored browser profile: it sees no new message and shows the relay\'s refusal', async () => {
    const { ext, pwa } = await twoDevices(opened)
    const noErrors = expectNoPageErrors(ext)
    await send(ext, 'Before the removal')
    await waitForSettledHistory(ext, 2)
    await status(ext, 'synced')

    const link = await handOff(ext, 'mirror')

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
    const { ext, pwa } = await twoDevices(opened)
    await send(ext, 'Nobody else')
    await waitForSettledHistory(ext, 2)
    await status(ext, 'synced')
    const link = await handOff(ext, 'observe')

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
