import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { demoReply } from '../src/demo-agent'
import {
  EXTENSION_DIR,
  expectNoPageErrors,
  openExtension,
  screenshot,
  send,
  sessionReady,
  shownHistory,
  shownPresence,
  startSession,
  waitForSettledHistory,
} from './web-harness'

type Extension = Awaited<ReturnType<typeof openExtension>>
let extension: Extension | undefined
afterEach(async () => {
  await extension?.close()
  extension = undefined
})

describe('the MV3 extension, loaded unpacked', () => {
  it('popup, tab and side panel share one session live; a closing one shows in the others\' presence', async () => {
    extension = await openExtension()
    const expectedId = (JSON.parse(readFileSync(join(EXTENSION_DIR, '../../static/extension-key.json'), 'utf8')) as { id: string }).id
    expect(extension.extensionId).toBe(expectedId)

    const tab = await extension.page('kai')
    const noErrors = expectNoPageErrors(tab)
    await startSession(tab)
    // The popup and the side panel open on the latest session by themselves.
    const panel = await extension.page('panel')
    const popup = await extension.page('popup')
    for (const page of [panel, popup]) await sessionReady(page)
    await tab.waitForFunction(() => document.querySelectorAll('[data-testid=presence] .peer').length === 3)
    expect(await shownPresence(tab)).toEqual(['tab (you)', 'popup', 'sidepanel'])

    // Asked in the popup; the reply streams into the panel and the tab as it is written.
    const prompt = 'Summarise my reading list'
    await send(popup, prompt)
    await panel.waitForSelector('.message.assistant[data-status=streaming]')
    for (const page of [tab, panel, popup]) await waitForSettledHistory(page, 2)
    const expected = [`user: ${prompt}`, `agent: ${demoReply(prompt)}`]
    for (const page of [tab, panel, popup]) expect(await shownHistory(page)).toEqual(expected)

    // A setting changed in the side panel shows in the tab.
    await panel.click('[data-testid=toggle-settings]')
    await panel.fill('[data-testid=config-model]', 'reader-large')
    await panel.press('[data-testid=config-model]', 'Enter')
    await tab.click('[data-testid=toggle-settings]')
    // The settings drawer's code loads when it first opens: the field may not be there yet.
    await tab.waitForFunction(() => (document.querySelector('[data-testid=config-model]') as HTMLInputElement | null)?.value === 'reader-large')

    await screenshot(popup, 'extension-popup')
    await screenshot(panel, 'extension-sidepanel')
    await screenshot(tab, 'extension-tab')

    await popup.close()
    for (const page of [tab, panel]) {
      await page.waitForSelector('[data-testid=presence] .peer[data-mode=popup][data-closing=true]')
    }
    expect(await shownPresence(tab)).toEqual(['tab (you)', 'sidepanel', 'popup (closing)'])
    expect(await shownPresence(panel)).toEqual(['sidepanel (you)', 'tab', 'popup (closing)'])
    await screenshot(panel, 'extension-sidepanel-popup-closed')
    noErrors()
  })

  it('ships every icon its manifest and pages name: no page asks for a file that is not there', async () => {
    extension = await openExtension()
    const manifest = JSON.parse(readFileSync(join(EXTENSION_DIR, 'manifest.json'), 'utf8')) as { icons: Record<string, string>; action: { default_icon: Record<string, string> } }
    const named = new Set([...Object.values(manifest.icons), ...Object.values(manifest.action.default_icon)])
    for (const name of ['popup', 'kai', 'panel'] as const) {
      const page = await extension.page(name)
      const missing: string[] = []
      page.on('response', (r) => r.status() >= 400 && missing.push(`${r.status()} ${r.url()}`))
      // A request the reload cancelled (the first load's idle preload of lazy views) is not a missing file.
      page.on('requestfailed', (r) => r.failure()?.errorText !== 'net::ERR_ABORTED' && missing.push(`failed ${r.url()}: ${r.failure()?.errorText}`))
      page.on('console', (m) => m.type() === 'error' && missing.push(`console: ${m.text()}`))
      await page.reload()
      await page.waitForSelector('[data-testid=welcome-new]')
      await page.waitForFunction(() => [...document.images].every((i) => i.complete))
      for (const src of await page.$$eval('img[src], link[rel~=icon]', (els) => els.map((el) => el.getAttribute('src') ?? el.getAttribute('href')!))) named.add(src)
      expect(await page.$$eval('img', (imgs) => imgs.filter((i) => i.naturalWidth === 0).map((i) => i.src)), `${name}: every image drew`).toEqual([])
      expect(missing, `${name}: nothing missing`).toEqual([])
      await page.close()
    }
    for (const file of named) expect(existsSync(join(EXTENSION_DIR, file)), `${file} is in the extension`).toBe(true)
  })

  it('a switch of mode loses nothing: the popup\'s draft and half-streamed reply continue in the side panel', async () => {
    extension = await openExtension()
    const popup = await extension.page('popup')
    await startSession(popup)
    const prompt = 'Draft me a packing list for a week of hiking'
    await send(popup, prompt)
    await popup.waitForFunction(() => (document.querySelector('.message.assistant .content')?.textContent ?? '').split(' ').length >= 4)
    await popup.fill('[data-testid=composer]', 'Also add a rain jacket and')
    await popup.evaluate(() => kaiApp.session!.whenSaved())
    expect(await popup.getAttribute('.message.assistant', 'data-status')).toBe('streaming')
    await popup.close()

    const panel = await extension.page('panel')
    await sessionReady(panel)
    expect(await panel.inputValue('[data-testid=composer]')).toBe('Also add a rain jacket and')
    await waitForSettledHistory(panel, 2)
    expect(await shownHistory(panel)).toEqual([`user: ${prompt}`, `agent: ${demoReply(prompt)}`])
  })

  it('a reply whose popup closed mid-stream is finished by the tab still open', async () => {
    extension = await openExtension()
    const tab = await extension.page('kai')
    await startSession(tab)
    const popup = await extension.page('popup')
    await sessionReady(popup)
    const prompt = 'List three museums in Vienna'
    await send(popup, prompt)
    await tab.waitForFunction(() => (document.querySelector('.message.assistant .content')?.textContent ?? '').split(' ').length >= 4)
    await popup.close()
    await waitForSettledHistory(tab, 2)
    expect(await shownHistory(tab)).toEqual([`user: ${prompt}`, `agent: ${demoReply(prompt)}`])
  })
})
