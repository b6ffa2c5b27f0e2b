import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { closeServer, testBrowser, type TestBrowser } from './testing/chromium-page'
import type { BrowserSession } from './browser-session'

let browser: TestBrowser
afterEach(() => browser?.close())
afterAll(() => closeServer())

type Win = typeof globalThis & { session: BrowserSession }

/** Creates a session in `page` (kept as window.session) and returns its id. */
function create(page: Page, label = 'tab'): Promise<string> {
  return page.evaluate(async (label) => {
    const device = await kai.browser.openBrowserDevice()
    const session = await kai.browser.BrowserSession.create(device, { mode: 'tab', label, agentId: 'agent', userId: 'user' })
    ;(globalThis as Win).session = session
    return session.sessionId
  }, label)
}

function open(page: Page, id: string, mode: 'tab' | 'popup' | 'sidepanel' = 'tab'): Promise<void> {
  return page.evaluate(async ({ id, mode }) => {
    const device = await kai.browser.openBrowserDevice()
    ;(globalThis as Win).session = await kai.browser.BrowserSession.open(device, id, { mode })
  }, { id, mode })
}

function messages(page: Page): Promise<string[]> {
  return page.evaluate(() => (globalThis as Win).session.engine.session.messages().map((m) => `${m.id}:${m.content}`))
}

describe('a browser session', () => {
  it('opens in a second tab and stays live both ways; the status reaches "saved" once IndexedDB holds it', async () => {
    browser = await testBrowser()
    const a = await browser.page()
    const b = await browser.page()
    const id = await create(a)
    const saved = await a.evaluate(async () => {
      const { session } = globalThis as Win
      const states: string[] = []
      session.on('status', (s) => states.push(s.state))
      session.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'from a' })
      await session.whenSaved()
      return { states, now: session.status.state, offline: session.status.offline, relay: session.status.relay }
    })
    expect(saved.states[0]).toBe('pending')
    expect(saved).toMatchObject({ now: 'saved', offline: false, relay: false })
    await open(b, id)
    expect(await messages(b)).toEqual(['m1:from a'])
    await b.evaluate(() => (globalThis as Win).session.engine.session.appendMessage({ id: 'm2', role: 'user', content: 'from b', timestamp: Date.now() + 1 }))
    await a.waitForFunction(() => (globalThis as Win).session.engine.session.messageCount === 2)
    expect(await messages(a)).toEqual(['m1:from a', 'm2:from b'])
  })

  it('a reload loses nothing: history, config, and volatile state with a half-written draft', async () => {
    browser = await testBrowser()
    const a = await browser.page()
    const id = await create(a)
    await a.evaluate(async () => {
      const { session } = globalThis as Win
      session.engine.session.appendMessage({ id: 'm1', role: 'user', content: 'kept' })
      session.engine.session.setConfig('temperature', 0.2)
      await session.setVolatile({ scratchpad: 'notes', ui_state: { draft: 'half-writ' }, streaming: { message_id: 'r1', buffer: 'partial reply' } })
      await session.whenSaved()
    })
    await a.reload()
    await a.waitForFunction(() => globalThis.kaiReady)
    await open(a, id)
    const after = await a.evaluate(() => {
      const { session } = globalThis as Win
      return { record: kai.record.toRecord(session.engine.session), volatile: session.presence.state.volatile }
    })
    expect(after.record.messages.map((m) => m.content)).toEqual(['kept'])
    expect(after.record.config.temperature).toBe(0.2)
    expect(after.volatile).toEqual({ active_tools: [], scratchpad: 'notes', ui_state: { draft: 'half-writ' }, streaming: { message_id: 'r1', buffer: 'partial reply' } })
  })

  it('volatile state at rest keeps the latest write of each field, whichever context wrote it', async () => {
    browser = await testBrowser()
    const popup = await browser.page()
    const tab = await browser.page()
    const id = await create(tab)
    await open(popup, id, 'popup')
    await popup.evaluate(async () => (globalThis as Win).session.setVolatile({ ui_state: { draft: 'typed in the popup' } }))
    await tab.evaluate(async () => (globalThis as Win).session.setVolatile({ scratchpad: 'edited in the tab' }))
    await popup.close()
    const panel = await browser.page()
    await open(panel, id, 'sidepanel')
    const v = await panel.evaluate(() => (globalThis as Win).session.presence.state.volatile)
    expect(v).toMatchObject({ scratchpad: 'edited in the tab', ui_state: { draft: 'typed in the popup' } })
  })

  it('contexts whose BroadcastChannel is cut keep working apart and merge when it heals', async () => {
    browser = await testBrowser()
    const a = await browser.page()
    const b = await browser.page()
    const id = await create(a)
    await open(b, id)
    await b.evaluate(() => (globalThis as Win).session.transport.disconnect())
    await a.evaluate(async () => {
      const s = (globalThis as Win).session
      s.engine.session.appendMessage({ id: 'a1', role: 'user', content: 'written in a while cut off', timestamp: 1000 })
      s.engine.session.setConfig('temperature', 1.5)
      await s.whenSaved()
    })
    await b.evaluate(async () => {
      const s = (globalThis as Win).session
      s.engine.session.appendMessage({ id: 'b1', role: 'user', content: 'written in b while cut off', timestamp: 2000 })
      s.engine.session.setConfig('model', 'small')
      await s.whenSaved()
    })
    // Apart: neither saw the other's edits, though both stored theirs in the same IndexedDB.
    expect(await messages(a)).toEqual(['a1:written in a while cut off'])
    expect(await messages(b)).toEqual(['b1:written in b while cut off'])
    await b.evaluate(() => (globalThis as Win).session.transport.connect())
    for (const p of [a, b]) await p.waitForFunction(() => (globalThis as Win).session.engine.session.messageCount === 2)
    const records = await Promise.all([a, b].map((p) => p.evaluate(() => JSON.stringify(kai.record.toRecord((globalThis as Win).session.engine.session)))))
    expect(records[0]).toBe(records[1])
    expect(JSON.parse(records[0]!).config).toMatchObject({ temperature: 1.5, model: 'small' })
  })

  it('shows each context in the others\' presence, and one closing as closing', async () => {
    browser = await testBrowser()
    const tab = await browser.page()
    const panel = await browser.page()
    const id = await create(tab)
    await open(panel, id, 'sidepanel')
    const seen = () => tab.evaluate(() => (globalThis as Win).session.presence.peers().filter((p) => !p.self).map((p) => `${p.mode}:${p.closing}`))
    await tab.waitForFunction(() => (globalThis as Win).session.presence.peers().length === 2)
    expect(await seen()).toEqual(['sidepanel:false'])
    // close() announces synchronously, as it must from pagehide.
    await panel.evaluate(() => void (globalThis as Win).session.close())
    await tab.waitForFunction(() => (globalThis as Win).session.presence.peers().some((p) => p.closing))
    expect(await seen()).toEqual(['sidepanel:true'])
  })

  it('IndexedDB holds no plaintext: not the history, config, volatile state or title', async () => {
    browser = await testBrowser()
    const page = await browser.page()
    await create(page, 'LABEL-VISIBLE-7')
    const r = await page.evaluate(async () => {
      const { session } = globalThis as Win
      const marker = 'PLAINTEXT-MARKER-31'
      session.engine.session.appendMessage({ id: 'm1', role: 'user', content: `message ${marker}` })
      session.engine.session.setConfig('system_prompt', `prompt ${marker}`)
      await session.setVolatile({ scratchpad: `scratch ${marker}`, ui_state: { draft: `draft ${marker}` } })
      const keys = await session.device.keys.keyring(session.sessionId)
      await session.device.catalog.touch(session.sessionId, { title: await kai.browser.SessionCatalog.sealTitle(session.sessionId, keys, `title ${marker}`) })
      await session.whenSaved()
      const [entry] = await session.device.catalog.list()
      return {
        marker: await kai.indexedDbContains(marker),
        // The dump does read y-indexeddb's data: the roster label is plaintext by design.
        label: await kai.indexedDbContains('LABEL-VISIBLE-7'),
        title: await kai.browser.SessionCatalog.openTitle(entry!, keys),
        inDoc: session.engine.session.messages()[0]!.content,
      }
    })
    expect(r).toEqual({ marker: false, label: true, title: 'title PLAINTEXT-MARKER-31', inDoc: 'message PLAINTEXT-MARKER-31' })
  })

  it('the session list changes live in the other contexts', async () => {
    browser = await testBrowser()
    const a = await browser.page()
    const b = await browser.page()
    await b.evaluate(async () => {
      const device = await kai.browser.openBrowserDevice()
      ;(globalThis as typeof globalThis & { changes: number }).changes = 0
      device.catalog.on('change', () => (globalThis as typeof globalThis & { changes: number }).changes++)
    })
    const id = await create(a)
    await b.waitForFunction(() => (globalThis as typeof globalThis & { changes: number }).changes > 0)
    const listed = await b.evaluate(async () => (await (await kai.browser.openBrowserDevice()).catalog.list()).map((e) => e.sessionId))
    expect(listed).toEqual([id])
  })
})
