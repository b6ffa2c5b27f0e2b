import { describe, expect, it } from 'vitest'
import { demoReply } from '../src/demo-agent'
import { closedAfterEach, handOff, openLink as openInPwa, twoDevices, waitForStatus } from './two-devices'
import {
  expectNoPageErrors,
  screenshot,
  send,
  sessionReady,
  shownHistory,
  statusOf,
  waitForSettledHistory,
} from './web-harness'

// Two devices: the extension in one Chromium profile and the PWA in
// another (its own user-data-dir, so its own device key and IndexedDB),
// linked only by a real kai-relay process.

const opened = closedAfterEach()

/** Opens a resume link in the PWA's profile. */
const openLink = (link: string) => openInPwa(opened.pwa!, link)

describe('the PWA and the extension, two devices linked by a relay', () => {
  it('mirror: the PWA in another profile opens the session from the resume link, and both write, synced through the relay', async () => {
    const { ext, pwa } = await twoDevices(opened)
    const noErrors = expectNoPageErrors(ext)
    await send(ext, 'Plan a weekend in Ghent')
    await waitForSettledHistory(ext, 2)
    await waitForStatus(ext, 'synced')

    const link = await handOff(ext, 'mirror', { beforeClose: (page) => screenshot(page, 'relay-handoff-dialog') })
    expect(link.startsWith(`${pwa.url}#kai=`)).toBe(true)
    const phone = await openLink(link)
    const phoneErrors = expectNoPageErrors(phone)
    // The secrets in the fragment leave the address bar once read.
    expect(phone.url()).not.toContain('#kai=')
    await waitForSettledHistory(phone, 2)
    expect(await shownHistory(phone)).toEqual(await shownHistory(ext))
    await waitForStatus(phone, 'synced')
    expect(await phone.$('[data-testid=read-only]')).toBeNull()
    // Presence crosses the relay: each device sees the other by its name.
    await phone.waitForSelector('[data-testid=presence] .peer[data-remote=true]:has-text("Extension tab")')
    await ext.waitForSelector('[data-testid=presence] .peer[data-remote=true]:has-text("Browser tab")')

    // Both write; each sees the other's message and reply.
    await send(phone, 'Add a day in Bruges')
    await send(ext, 'And a good bakery')
    for (const page of [ext, phone]) await waitForSettledHistory(page, 6)
    expect(await shownHistory(phone)).toEqual(await shownHistory(ext))
    expect(await shownHistory(phone)).toEqual(expect.arrayContaining(['user: Add a day in Bruges', `agent: ${demoReply('Add a day in Bruges')}`, 'user: And a good bakery']))
    for (const page of [ext, phone]) await waitForStatus(page, 'synced')
    await screenshot(phone, 'relay-pwa-mirror')
    await screenshot(ext, 'relay-extension-mirror')
    noErrors()
    phoneErrors()
  })

  it('the status says offline while the relay is down, keeps edits on the device, and says synced once the relay is back', async () => {
    const { ext } = await twoDevices(opened)
    await send(ext, 'Before the outage')
    await waitForSettledHistory(ext, 2)
    await waitForStatus(ext, 'synced')

    await opened.relay!.stop()
    await waitForStatus(ext, 'offline')
    await send(ext, 'During the outage')
    await waitForSettledHistory(ext, 4)
    expect(await statusOf(ext)).toBe('offline')
    // The network is up: the chip says it is the relay that cannot be reached.
    expect(await ext.textContent('[data-testid=sync-status]')).toBe('Relay offline')
    expect(await ext.getAttribute('[data-testid=sync-status]', 'title')).toContain('Saved on this device')
    await screenshot(ext, 'relay-extension-offline')

    opened.relay = await opened.relay!.restart()
    await waitForStatus(ext, 'synced')
    // What was written during the outage reached the relay: a device handed the session now gets it.
    const phone = await openLink(await handOff(ext, 'observe'))
    await waitForSettledHistory(phone, 4)
    expect(await shownHistory(phone)).toEqual(await shownHistory(ext))
  })

  it('one context of the extension holds the relay connection for the others; when it closes, another takes over', async () => {
    const { ext, extension, relay } = await twoDevices(opened)
    const metrics = async () => {
      const text = await (await fetch(`${relay.url.replace('ws:', 'http:')}/metrics`)).text()
      return Number(/^kai_relay_connections_total (\d+)$/m.exec(text)?.[1] ?? 0)
    }
    await send(ext, 'Which context holds the socket?')
    await waitForSettledHistory(ext, 2)
    await waitForStatus(ext, 'synced')
    const panel = await extension.page('panel')
    const popup = await extension.page('popup')
    for (const page of [panel, popup]) {
      await sessionReady(page)
      await waitForStatus(page, 'synced')
    }
    expect(await metrics()).toBe(1)

    // The tab holding it closes: the side panel or the popup connects, and what they write reaches the relay.
    await ext.close()
    await send(panel, 'Written after the tab closed')
    await waitForSettledHistory(panel, 4)
    await waitForStatus(panel, 'synced')
    await waitForStatus(popup, 'synced')
    expect(await metrics()).toBe(2)
    const phone = await openLink(await handOff(popup, 'observe'))
    await waitForSettledHistory(phone, 4)
    expect(await shownHistory(phone)).toEqual(await shownHistory(panel))
  })

  it('observe: the PWA follows the session live, read-only', async () => {
    const { ext } = await twoDevices(opened)
    await send(ext, 'Summarise the meeting notes')
    await waitForSettledHistory(ext, 2)
    const phone = await openLink(await handOff(ext, 'observe'))
    await waitForSettledHistory(phone, 2)
    await phone.waitForSelector('[data-testid=read-only]')
    expect(await phone.isDisabled('[data-testid=composer]')).toBe(true)
    await send(ext, 'Now list the action items')
    await waitForSettledHistory(phone, 4)
    expect(await shownHistory(phone)).toEqual(await shownHistory(ext))
    // The extension still writes: observe takes nothing from the source.
    expect(await ext.isDisabled('[data-testid=composer]')).toBe(false)
    expect(await statusOf(phone)).not.toBe('offline')
    await screenshot(phone, 'relay-pwa-observe')
  })

  it('takeover: the PWA writes, and the extension says where the session went and becomes read-only', async () => {
    const { ext } = await twoDevices(opened)
    await send(ext, 'Draft a reply to the landlord')
    await waitForSettledHistory(ext, 2)
    await ext.fill('[data-testid=composer]', 'Also ask about the heating')
    await ext.evaluate(() => kaiApp.session!.whenSaved())
    const phone = await openLink(await handOff(ext, 'takeover'))
    await waitForSettledHistory(phone, 2)
    // The draft travels with the session.
    expect(await phone.inputValue('[data-testid=composer]')).toBe('Also ask about the heating')

    await ext.waitForSelector('[data-testid=read-only][data-moved-to]', { timeout: 20_000 })
    expect(await ext.getAttribute('[data-testid=read-only]', 'data-moved-to')).toBe('Browser tab')
    expect(await ext.isDisabled('[data-testid=composer]')).toBe(true)
    expect(await phone.$('[data-testid=read-only]')).toBeNull()

    await send(phone, 'Also ask about the heating')
    await waitForSettledHistory(ext, 4)
    expect(await shownHistory(ext)).toEqual(await shownHistory(phone))
    await screenshot(ext, 'relay-extension-moved')
    await screenshot(phone, 'relay-pwa-takeover')
  })
})
