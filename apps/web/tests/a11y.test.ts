import { describe, expect, it } from 'vitest'
import { ERROR_CODES } from '@kai-sync/model'
import type { Page } from '@kai-sync/browser-harness'
import { checkView, type ViewCheck } from './a11y-checks'
import { startRelay } from './relay-harness'
import { closedAfterEach, handOff, openLink, twoDevices, waitForStatus as status } from './two-devices'
import { expectNoPageErrors, openExtension, openPwa, send, startSession, trustRelay, useOfferedRelay, waitForSettledHistory } from './web-harness'

// Issue 16, "a phone, a keyboard, a screen reader": every view of the real
// app, at a phone's 390×844 touch screen, in the 360-pixel-wide popup and
// on a desktop, scanned by axe-core (no serious or critical violation),
// with touch targets of 44 px and nothing cut off; screenshots kept in
// test-results/screenshots/a11y-*.png. The dialogs are driven by keyboard.

const opened = closedAfterEach()
const LONG = { timeout: 30_000 }
const PHONE = { mobile: true, viewport: { width: 390, height: 844 } }
const CLEAN: ViewCheck = { axe: [], small: [], cut: [] }
/** Any KaiError code shown as a code (`malformed:`, `already_used`), as a raw error message starts. */
const CODE = new RegExp(`\\b(${Object.keys(ERROR_CODES).join('|')})\\b:|\\b[a-z]+_[a-z_]+\\b`)
const DRAWERS = ['settings', 'notes', 'devices', 'audit', 'memory'] as const

const focusedTestId = (page: Page) => page.evaluate(() => document.activeElement?.getAttribute('data-testid') ?? document.activeElement?.tagName ?? null)
const focusInside = (page: Page, selector: string) => page.evaluate((s) => !!document.querySelector(s)?.contains(document.activeElement), selector)

/**
 * Walks every view a person reaches from the welcome screen: the session,
 * the sessions sheet (one column), each drawer, the handoff dialog (and its
 * QR code when there is a relay), the resume page of a damaged link.
 */
async function walk(page: Page, size: string, options: { touch: boolean; compact: boolean; relay: boolean }): Promise<Record<string, ViewCheck>> {
  const seen: Record<string, ViewCheck> = {}
  const look = async (view: string) => {
    seen[`${size} ${view}`] = await checkView(page, `${size}-${view}`, { touch: options.touch })
  }
  await page.waitForSelector('[data-testid=welcome-new]')
  await look('welcome')
  await startSession(page)
  expect(await focusedTestId(page), 'after "Start a session" the composer has focus').toBe('composer')
  await send(page, 'Plan a weekend in Lisbon with a day trip to Sintra')
  await waitForSettledHistory(page, 2)
  await look('session')
  await page.click('[data-testid=sync-status]')
  await page.waitForSelector('[data-testid=sync-detail]', { state: 'visible' })
  await look('sync-detail')
  await page.click('[data-testid=sync-status]')
  if (options.compact) {
    await page.click('[data-testid=open-sessions]')
    await page.waitForSelector('[data-testid=sessions-sheet]')
    await look('sessions-sheet')
    await page.click('[data-testid=sessions-sheet] [aria-current=page]')
    await page.waitForSelector('[data-testid=sessions-sheet]', { state: 'detached' })
  } else {
    expect(await page.isVisible('[data-testid=session-list]'), 'the sidebar lists the sessions on a wide screen').toBe(true)
  }
  for (const drawer of DRAWERS) {
    await page.click(`[data-testid=toggle-${drawer}]`)
    await page.waitForSelector('[data-testid=drawer]')
    await look(`drawer-${drawer}`)
    await page.click(`[data-testid=toggle-${drawer}]`)
    await page.waitForSelector('[data-testid=drawer]', { state: 'detached' })
  }
  await page.click('[data-testid=handoff]')
  await page.waitForSelector('[data-testid=handoff-dialog]')
  await look(options.relay ? 'handoff' : 'handoff-relay-settings')
  if (options.relay) {
    await page.click('[data-testid=handoff-mirror]')
    await page.waitForSelector('[data-testid=resume-link]', LONG)
    await look('handoff-code')
  }
  await page.keyboard.press('Escape')
  await page.waitForSelector('[data-testid=handoff-dialog]', { state: 'detached' })
  await page.goto(`${page.url().split('#')[0]}#kai=this-link-was-cut-short`)
  await page.waitForSelector('[data-testid=resume-page][data-state=failed]')
  await look('resume-failed')
  // What happened and what to do, in words: no error code, once or twice.
  const said = (await page.textContent('[data-testid=resume-page] p')) ?? ''
  expect(said).not.toMatch(CODE)
  expect(said).toMatch(/^This is not a kai-sync resume link\b.*\. (Check|Make|Open|Try)\b[^.]*\.$/)
  return seen
}

const allClean = (seen: Record<string, ViewCheck>) => Object.fromEntries(Object.keys(seen).map((k) => [k, CLEAN]))

describe('a phone, a keyboard, a screen reader (issue 16)', () => {
  it('on a 390×844 touch phone every view passes axe, has 44 px targets and nothing cut off; the relay offer too', async () => {
    const relay = (opened.relay = await startRelay())
    const pwa = (opened.pwa = await openPwa(PHONE))
    const page = await pwa.profile.newPage(`${pwa.url}?relay=${encodeURIComponent(relay.url)}`)
    const noErrors = expectNoPageErrors(page)
    expect(await page.evaluate(() => matchMedia('(pointer: coarse)').matches)).toBe(true)
    await page.waitForSelector('[data-testid=relay-offer]')
    const offer = await checkView(page, 'phone-relay-offer', { touch: true })
    await useOfferedRelay(page, relay.url)
    const seen = { 'phone relay-offer': offer, ...(await walk(page, 'phone', { touch: true, compact: true, relay: true })) }
    expect(seen).toEqual(allClean(seen))
    noErrors()
  })

  for (const [name, width] of [['popup', 360], ['panel', 400]] as const) {
    it(`in the ${width}-pixel-wide extension ${name === 'panel' ? 'side panel' : name} every view passes axe, has 44 px targets and nothing cut off`, async () => {
      const extension = (opened.extension = await openExtension())
      const page = await extension.page(name)
      const noErrors = expectNoPageErrors(page)
      expect(await page.evaluate(() => document.documentElement.clientWidth)).toBe(width)
      const seen = await walk(page, name, { touch: true, compact: true, relay: false })
      expect(seen).toEqual(allClean(seen))
      noErrors()
    })
  }

  it('on a desktop every view passes axe and nothing is cut off', async () => {
    const relay = (opened.relay = await startRelay())
    const pwa = (opened.pwa = await openPwa())
    await trustRelay(pwa.profile, pwa.url, relay.url)
    const page = await pwa.profile.newPage(pwa.url)
    const noErrors = expectNoPageErrors(page)
    const seen = await walk(page, 'desktop', { touch: false, compact: false, relay: true })
    expect(seen).toEqual(allClean(seen))
    noErrors()
  })

  it('the handoff dialog takes focus, keeps Tab and Shift+Tab inside, closes on Escape and gives focus back to its button', async () => {
    const relay = (opened.relay = await startRelay())
    const pwa = (opened.pwa = await openPwa())
    await trustRelay(pwa.profile, pwa.url, relay.url)
    const page = await pwa.profile.newPage(pwa.url)
    await startSession(page)
    // Opened by keyboard, as someone without a mouse does.
    await page.focus('[data-testid=handoff]')
    await page.keyboard.press('Enter')
    await page.waitForSelector('[data-testid=handoff-dialog]')
    expect(await focusInside(page, '[data-testid=handoff-dialog]'), 'focus moved into the dialog').toBe(true)
    const visited = new Set<string>()
    for (const key of ['Tab', 'Shift+Tab']) {
      for (let i = 0; i < 14; i++) {
        await page.keyboard.press(key)
        expect(await focusInside(page, '[data-testid=handoff-dialog]'), `${key} #${i + 1} stays in the dialog`).toBe(true)
        visited.add(await page.evaluate(() => document.activeElement?.textContent?.trim() ?? ''))
      }
    }
    // Every control in it was reached, both ways round.
    expect([...visited]).toEqual(expect.arrayContaining(['Phone', 'Take over', 'Mirror', 'Observe', 'Change', 'Close']))
    await page.keyboard.press('Escape')
    await page.waitForSelector('[data-testid=handoff-dialog]', { state: 'detached' })
    expect(await focusedTestId(page), 'focus is back on the button that opened it').toBe('handoff')
    // Through its Close button too.
    await page.keyboard.press('Enter')
    await page.waitForSelector('[data-testid=handoff-dialog]')
    await page.click('[data-testid=handoff-dialog] button:text("Close")')
    expect(await focusedTestId(page)).toBe('handoff')
  })

  it('the sessions sheet on a phone takes focus, keeps Tab and Shift+Tab inside, closes on Escape and gives focus back', async () => {
    const pwa = (opened.pwa = await openPwa(PHONE))
    const page = await pwa.profile.newPage(pwa.url)
    await startSession(page)
    await page.focus('[data-testid=open-sessions]')
    await page.keyboard.press('Enter')
    await page.waitForSelector('[data-testid=sessions-sheet]')
    expect(await focusInside(page, '[data-testid=sessions-sheet]'), 'focus moved into the sheet').toBe(true)
    expect(await page.getAttribute('[data-testid=sessions-sheet]', 'aria-label')).toBe('Sessions')
    for (const key of ['Tab', 'Shift+Tab']) {
      for (let i = 0; i < 8; i++) {
        await page.keyboard.press(key)
        expect(await focusInside(page, '[data-testid=sessions-sheet]'), `${key} #${i + 1} stays in the sheet`).toBe(true)
      }
    }
    await page.keyboard.press('Escape')
    await page.waitForSelector('[data-testid=sessions-sheet]', { state: 'detached' })
    expect(await focusedTestId(page), 'focus is back on the button that opened it').toBe('open-sessions')
  })

  it('a user_choice conflict: the dialog passes axe at phone, popup and desktop sizes, takes focus, traps Tab, closes on Escape and gives focus back; a choice by keyboard resolves it', async () => {
    const { ext, pwa, relay, extension } = await twoDevices(opened, PHONE)
    await status(ext, 'synced')
    const phone = await openLink(pwa, await handOff(ext, 'mirror', { to: 'Phone' }))
    await status(phone, 'synced')

    await ext.click('[data-testid=toggle-settings]')
    await phone.click('[data-testid=toggle-settings]')
    await ext.selectOption('[data-testid=policy-temperature]', 'user_choice')
    await phone.waitForSelector('[data-testid=setting-temperature][data-policy=user_choice]', LONG)
    await relay.stop()
    await Promise.all([status(ext, 'offline'), status(phone, 'offline')])
    for (const [page, value] of [[ext, '0.3'], [phone, '1.4']] as const) {
      await page.fill('[data-testid=config-temperature]', value)
      await page.press('[data-testid=config-temperature]', 'Enter')
      await page.evaluate(() => kaiApp.session!.whenSaved())
    }
    // Each is writing a message when the dialog arrives: that is where focus must come back to.
    for (const page of [ext, phone]) await page.focus('[data-testid=composer]')
    opened.relay = await relay.restart()
    const popup = await extension.page('popup')
    const seen: Record<string, ViewCheck> = {}
    for (const [page, size, touch] of [[phone, 'phone', true], [popup, 'popup', true], [ext, 'desktop', false]] as const) {
      await page.waitForSelector('[data-testid=conflict-dialog][data-field="config.temperature"]', LONG)
      expect(await focusInside(page, '[data-testid=conflict-dialog]'), `the dialog took focus (${size})`).toBe(true)
      seen[`${size} conflict`] = await checkView(page, `${size}-conflict`, { touch })
    }
    expect(seen).toEqual(allClean(seen))

    // Tab and Shift+Tab stay in; Escape is "decide later", and focus goes back to the field that had it.
    for (const key of ['Tab', 'Shift+Tab']) {
      for (let i = 0; i < 8; i++) {
        await ext.keyboard.press(key)
        expect(await focusInside(ext, '[data-testid=conflict-dialog]'), `${key} #${i + 1} stays in the dialog`).toBe(true)
      }
    }
    await ext.keyboard.press('Escape')
    await ext.waitForSelector('[data-testid=conflict-dialog]', { state: 'detached' })
    expect(await focusedTestId(ext), 'focus is back in the composer, which had it when the dialog opened').toBe('composer')

    // On the phone, by keyboard alone: Tab to a value's Keep button, Enter.
    let keep = false
    for (let i = 0; i < 8 && !keep; i++) {
      await phone.keyboard.press('Tab')
      keep = await phone.evaluate(() => !!document.activeElement?.closest('[data-testid=conflict-value]') && document.activeElement?.tagName === 'BUTTON')
    }
    expect(keep, 'a Keep button is reachable by Tab').toBe(true)
    await phone.keyboard.press('Enter')
    for (const page of [phone, popup]) await page.waitForSelector('[data-testid=conflict-dialog]', { state: 'detached', ...LONG })
    expect(await focusedTestId(phone), 'focus is back in the composer').toBe('composer')
  })

})
