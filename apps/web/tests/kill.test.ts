import { afterEach, describe, expect, it } from 'vitest'
import * as prng from 'lib0/prng'
import type { Page } from '@kai-sync/browser-harness'
import { launchChromium, serveStatic, type ChromiumProfile, type StaticServer } from '@kai-sync/browser-harness'
import { PWA_DIR, send, sessionReady, startSession } from './web-harness'

// "Saved locally" is a promise: once the chip says so, closing the tab,
// crashing its renderer or killing the whole browser loses nothing. And a
// draft typed just before a close is either saved or the close is held
// back (beforeunload) until it is.

const CYCLES = Number(process.env.KAI_BROWSER_KILL_CYCLES ?? 20)
const SEED = Number(process.env.KAI_KILL_SEED ?? 20261201)

let server: StaticServer | undefined
let profile: ChromiumProfile | undefined
afterEach(async () => {
  await profile?.close().catch(() => undefined)
  await server?.close()
  profile = server = undefined
})

/** Waits until the engine itself says saved with `text` in the session, and the chip shows it. */
async function savedWith(page: Page, text: string): Promise<void> {
  await page.waitForFunction(
    (t) =>
      kaiApp.session?.engine.session.messages().some((m) => m.content === t) === true &&
      kaiApp.session.engine.status.state !== 'pending' &&
      document.querySelector('[data-testid=sync-status]')?.getAttribute('data-state') === 'saved',
    text,
    { timeout: 20_000 },
  )
}

const contents = (page: Page) => page.evaluate(() => kaiApp.session!.engine.session.messages().map((m) => m.content))

describe('closing or crashing a tab right after "Saved locally"', () => {
  it(`${CYCLES} cycles of close, renderer crash and browser kill: every saved message is there after reopening`, async () => {
    const gen = prng.create(SEED)
    server = await serveStatic({ dir: PWA_DIR })
    const url = `${server.url}/`
    profile = await launchChromium()
    let page = await profile.newPage(url)
    const id = await startSession(page)
    const saved: string[] = []
    const ways = { close: 0, crash: 0, kill: 0 }
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const text = `saved before the end of cycle ${cycle}`
      await send(page, text)
      await savedWith(page, text)
      saved.push(text)
      const way = (['close', 'crash', 'kill'] as const)[prng.uint32(gen, 0, 2)]!
      ways[way]++
      if (process.env.KAI_KILL_TRACE) console.log(`cycle ${cycle}: ${way}`)
      if (way === 'close') await page.close()
      else if (way === 'crash') {
        const cdp = await page.context().newCDPSession(page)
        const crashed = new Promise((resolve) => page.once('crash', resolve))
        void cdp.send('Page.crash').catch(() => undefined) // the renderer dies before it answers
        await crashed
        await page.close()
      } else {
        const root = profile.root
        await profile.kill()
        profile = await launchChromium({ root })
      }
      page = await profile.newPage(`${url}#/s/${id}`)
      await sessionReady(page)
      const shown = await contents(page)
      const lost = saved.filter((t) => !shown.includes(t))
      expect(lost, `cycle ${cycle} (${way})`).toEqual([])
    }
    // Every way of ending a tab was tried (uint32 without its bounds once made every cycle a browser kill).
    if (CYCLES >= 6) expect(Object.values(ways).every((n) => n > 0), JSON.stringify(ways)).toBe(true)
    console.log(`browser kill (seed ${SEED}): ${CYCLES} cycles (close ${ways.close}, renderer crash ${ways.crash}, browser kill ${ways.kill}), ${saved.length} messages saved, 0 lost`)
  }, 600_000)

  it('a draft typed just before the tab closes is saved, or the close waits for it', async () => {
    server = await serveStatic({ dir: PWA_DIR })
    const url = `${server.url}/`
    profile = await launchChromium()
    let page = await profile.newPage(url)
    const id = await startSession(page)
    let heldBack = 0
    for (let round = 0; round < 5; round++) {
      const draft = `a draft, round ${round}, typed to the last key`
      await page.fill('[data-testid=composer]', '')
      await page.type('[data-testid=composer]', draft)
      // A close held back asks the person; here they stay, and close again once it is saved.
      const outcome = new Promise<'closed' | 'asked'>((resolve) => {
        page.once('close', () => resolve('closed'))
        page.once('dialog', (dialog) => {
          resolve('asked')
          void dialog.dismiss()
        })
      })
      await page.close({ runBeforeUnload: true })
      if ((await outcome) === 'asked') {
        heldBack++
        await page.evaluate(() => kaiApp.session!.volatile.whenSaved())
        const closed = new Promise((resolve) => page.once('close', resolve))
        await page.close({ runBeforeUnload: true })
        await closed
      }
      page = await profile.newPage(`${url}#/s/${id}`)
      await sessionReady(page)
      expect(await page.inputValue('[data-testid=composer]')).toBe(draft)
    }
    console.log(`drafts: 5 closes right after typing, ${heldBack} held back until saved, 0 lost`)
  }, 120_000)
})
