import { describe, expect, it } from 'vitest'
import type { Page } from '@kai-sync/browser-harness'
import { closedAfterEach, handOff, openLink, twoDevices, waitForStatus } from './two-devices'
import { expectNoPageErrors, openPwa, screenshot, sessionReady, startSession } from './web-harness'

// Issue 16, "show the whole session": settings with their policies and
// conflicts, the audit log, memory snapshots and history of any length,
// through the real app. Conflicts need two devices: the extension in one
// Chromium profile and the PWA in another, linked by a real kai-relay
// process, writing the same field while the relay is down.

const opened = closedAfterEach()
const LONG = { timeout: 30_000 }

/** The extension's tab and the PWA in its own profile, sharing one session as writers (a mirror handoff). */
async function writersOnTwoDevices(): Promise<{ ext: Page; phone: Page }> {
  const { ext, pwa } = await twoDevices(opened)
  await waitForStatus(ext, 'synced')
  const phone = await openLink(pwa, await handOff(ext, 'mirror'))
  await waitForStatus(phone, 'synced')
  return { ext, phone }
}

const deviceOf = (page: Page) => page.evaluate(() => kaiApp.session!.engine.session.device)

async function setField(page: Page, field: string, value: string): Promise<void> {
  await page.fill(`[data-testid=config-${field}]`, value)
  await page.press(`[data-testid=config-${field}]`, 'Enter')
}

async function shownPolicy(page: Page, field: string): Promise<string | null> {
  return page.getAttribute(`[data-testid=setting-${field}]`, 'data-policy')
}

/** Both devices write `field` while the relay is down, then it comes back. */
async function writeConcurrently(ext: Page, phone: Page, field: string, values: [string, string]): Promise<void> {
  await opened.relay!.stop()
  await Promise.all([waitForStatus(ext, 'offline'), waitForStatus(phone, 'offline')])
  await setField(ext, field, values[0])
  await setField(phone, field, values[1])
  await Promise.all([ext.evaluate(() => kaiApp.session!.whenSaved()), phone.evaluate(() => kaiApp.session!.whenSaved())])
  opened.relay = await opened.relay!.restart()
  await Promise.all([waitForStatus(ext, 'synced'), waitForStatus(phone, 'synced')])
}

/** The values a field's conflict shows, each as `value from device`. */
function conflictValues(page: Page, scope: string): Promise<string[]> {
  return page.$$eval(`${scope} [data-testid=conflict-value]`, (els) => els.map((el) => `${el.querySelector('code')?.textContent} from ${el.getAttribute('data-device')}`).sort())
}

describe('the whole session in the web app', () => {
  it('settings show their policy, a policy change reaches the other device, and a manual conflict shows both values with their device until one is kept', async () => {
    const { ext, phone } = await writersOnTwoDevices()
    const extErrors = expectNoPageErrors(ext)
    const phoneErrors = expectNoPageErrors(phone)
    const [extId, phoneId] = [await deviceOf(ext), await deviceOf(phone)]
    for (const page of [ext, phone]) await page.click('[data-testid=toggle-settings]')

    // Every field shows the policy in force: the session default, latest wins.
    for (const field of ['model', 'temperature', 'max_tokens', 'system_prompt', 'tools']) expect(await shownPolicy(ext, field)).toBe('timestamp')
    await ext.selectOption('[data-testid=policy-model]', 'manual')
    await phone.waitForSelector('[data-testid=setting-model][data-policy=manual]', LONG)
    expect(await phone.inputValue('[data-testid=policy-model]')).toBe('manual')
    // The session default changes every field without one of its own.
    await phone.selectOption('[data-testid=policy-default]', 'merge')
    await ext.waitForSelector('[data-testid=setting-tools][data-policy=merge]', LONG)
    expect(await shownPolicy(ext, 'model')).toBe('manual')

    await writeConcurrently(ext, phone, 'model', ['model-from-ext', 'model-from-phone'])
    for (const page of [ext, phone]) {
      await page.waitForSelector('[data-testid=field-conflict][data-field="config.model"]', LONG)
      expect(await conflictValues(page, '[data-testid=setting-model]')).toEqual([`"model-from-ext" from ${extId}`, `"model-from-phone" from ${phoneId}`].sort())
    }
    // Where each came from, in words: the other device by its label.
    expect(await phone.textContent(`[data-testid=setting-model] [data-device="${extId}"] [data-testid=conflict-value-from]`)).toContain('Extension tab')
    expect(await phone.textContent(`[data-testid=setting-model] [data-device="${phoneId}"] [data-testid=conflict-value-from]`)).toContain('this device')
    await screenshot(phone, 'whole-session-manual-conflict')

    // Keep the extension's value, from the phone.
    await phone.click(`[data-testid=setting-model] [data-device="${extId}"] button`)
    for (const page of [ext, phone]) {
      await page.waitForFunction(() => !document.querySelector('[data-testid=field-conflict]'), undefined, LONG)
      await page.waitForFunction(() => (document.querySelector('[data-testid=config-model]') as HTMLInputElement).value === 'model-from-ext', undefined, LONG)
      expect(await page.evaluate(() => kaiApp.session!.engine.session.policies.conflicts())).toEqual([])
    }
    extErrors()
    phoneErrors()
  })

  it('a user_choice conflict opens the conflict dialog on the other device, and the choice closes it everywhere; the audit log shows who did what, live, by device', async () => {
    const { ext, phone } = await writersOnTwoDevices()
    const [extId, phoneId] = [await deviceOf(ext), await deviceOf(phone)]
    await ext.click('[data-testid=toggle-settings]')
    await phone.click('[data-testid=toggle-settings]')
    await ext.selectOption('[data-testid=policy-temperature]', 'user_choice')
    await phone.waitForSelector('[data-testid=setting-temperature][data-policy=user_choice]', LONG)

    await writeConcurrently(ext, phone, 'temperature', ['0.3', '1.4'])
    for (const page of [ext, phone]) {
      await page.waitForSelector('[data-testid=conflict-dialog][data-field="config.temperature"]', LONG)
      expect(await conflictValues(page, '[data-testid=conflict-dialog]')).toEqual([`0.3 from ${extId}`, `1.4 from ${phoneId}`].sort())
    }
    await screenshot(phone, 'whole-session-user-choice')
    await phone.click(`[data-testid=conflict-dialog] [data-device="${extId}"] button`)
    for (const page of [ext, phone]) {
      await page.waitForFunction(() => !document.querySelector('[data-testid=conflict-dialog]'), undefined, LONG)
      await page.waitForFunction(() => (document.querySelector('[data-testid=config-temperature]') as HTMLInputElement).value === '0.3', undefined, LONG)
    }

    // The audit log, on the extension: both devices' actions, with device and mode.
    await ext.click('[data-testid=toggle-audit]')
    const rows = () => ext.$$eval('[data-testid=audit-row]', (els) => els.map((el) => `${el.getAttribute('data-action')} ${el.getAttribute('data-actor')} ${el.getAttribute('data-mode')}`))
    await ext.waitForFunction(() => document.querySelectorAll('[data-testid=audit-row][data-action="conflict.resolved"]').length === 1, undefined, LONG)
    expect(await rows()).toEqual(
      expect.arrayContaining([`policy.set ${extId} tab`, `config.set ${extId} tab`, `config.set ${phoneId} tab`, `conflict.resolved ${phoneId} tab`]),
    )
    expect(await ext.textContent(`[data-testid=audit-row][data-action="conflict.resolved"]`)).toContain('Browser tab')
    // Filtered by the phone: only its entries.
    await ext.selectOption('[data-testid=audit-device]', phoneId)
    const phoneRows = await rows()
    expect(phoneRows.length).toBeGreaterThanOrEqual(2)
    expect(phoneRows.every((r) => r.includes(` ${phoneId} `))).toBe(true)
    // Live: what the phone does now appears without reopening anything.
    const before = phoneRows.length
    await setField(phone, 'model', 'live-model')
    await ext.waitForFunction((n) => document.querySelectorAll('[data-testid=audit-row]').length === n + 1, before, LONG)
    expect(await ext.textContent('[data-testid=audit-row]')).toContain('live-model')
    await screenshot(ext, 'whole-session-audit')
  })

  it('a memory snapshot a person adds in one tab shows, readable, in another', async () => {
    const pwa = (opened.pwa = await openPwa())
    const a = await pwa.profile.newPage(pwa.url)
    const errors = expectNoPageErrors(a)
    const id = await startSession(a)
    const b = await pwa.profile.newPage(`${pwa.url}#/s/${id}`)
    await sessionReady(b)
    // The agent's own snapshot (any JSON), already in the session.
    await a.evaluate(() => kaiApp.session!.engine.session.addMemory({ id: 'agent-1', summary: 'Agent notes', data: { likes: ['tea'] } }))
    await a.click('[data-testid=toggle-memory]')
    await b.click('[data-testid=toggle-memory]')
    await a.fill('[data-testid=memory-summary]', 'Travel')
    await a.fill('[data-testid=memory-note]', 'Prefers trains over planes')
    await a.click('[data-testid=memory-add]')
    await b.waitForFunction(() => document.querySelectorAll('[data-testid=memory-row]').length === 2, undefined, LONG)
    const first = b.locator('[data-testid=memory-row]').first()
    expect(await first.locator('.memory-summary').textContent()).toBe('Travel')
    await first.locator('summary').click()
    expect(await first.locator('[data-testid=memory-data]').textContent()).toBe('Prefers trains over planes')
    const agent = b.locator('[data-testid=memory-row][data-id=agent-1]')
    await agent.locator('summary').click()
    expect(JSON.parse((await agent.locator('[data-testid=memory-data]').textContent())!)).toEqual({ likes: ['tea'] })
    await screenshot(b, 'whole-session-memory')
    errors()
  })

  it('with 1,200 messages the earliest is reachable, by scrolling up and by "load earlier"', async () => {
    const pwa = (opened.pwa = await openPwa())
    const a = await pwa.profile.newPage(pwa.url)
    const errors = expectNoPageErrors(a)
    await startSession(a)
    await a.evaluate(() => {
      const doc = kaiApp.session!.engine.session
      const t = Date.now() - 10_000_000
      doc.transact(() => {
        for (let i = 0; i < 1200; i++) doc.appendMessage({ id: `m-${String(i).padStart(5, '0')}`, role: i % 2 ? 'assistant' : 'user', content: `message ${i}`, timestamp: t + i })
      })
    })
    await a.waitForSelector('[data-message-id=m-01199]', LONG)
    expect(await a.$('[data-message-id=m-00000]')).toBeNull()
    // Scrolling to the top loads the page before, again and again.
    for (let i = 0; i < 3 && !(await a.$('[data-message-id=m-00000]')); i++) {
      const hidden = await a.getAttribute('[data-testid=history]', 'data-hidden')
      await a.evaluate(() => (document.querySelector('[data-testid=history]')!.scrollTop = 0))
      await a.waitForFunction((h) => document.querySelector('[data-testid=history]')!.getAttribute('data-hidden') !== h, hidden, LONG)
    }
    // The button loads the rest, for keyboards and screen readers.
    while (await a.$('[data-testid=load-earlier]')) await a.click('[data-testid=load-earlier]')
    await a.waitForSelector('[data-message-id=m-00000]', LONG)
    expect(await a.$$eval('[data-testid=history] .message', (els) => els.length)).toBe(1200)
    expect(await a.textContent('[data-message-id=m-00000] .content')).toBe('message 0')
    errors()
  })
})
