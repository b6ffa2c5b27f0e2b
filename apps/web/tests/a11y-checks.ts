import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { Page } from '@kai-sync/browser-harness'
import { screenshot } from './web-harness'

// What a person sees, checked in the page itself: an axe-core scan, touch
// targets, and anything cut off by the viewport or by the box it sits in.

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

/** axe-core's serious and critical violations on the page as shown, one `rule: element` line each. */
export async function axeViolations(page: Page): Promise<string[]> {
  // Evaluated through the debugger protocol, so an extension page's CSP (no inline scripts) does not stop it.
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE)
  const results = await page.evaluate(() =>
    (window as unknown as { axe: { run(ctx: Document, o: object): Promise<{ violations: Array<{ id: string; impact: string | null; nodes: Array<{ target: unknown[] }> }> }> } }).axe.run(document, {
      resultTypes: ['violations'],
    }),
  )
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${n.target.join(' ')}`))
}

/** Controls a finger must hit that are smaller than 44×44 CSS pixels. */
export function smallTargets(page: Page): Promise<string[]> {
  return page.$$eval('button, input, select, textarea, summary, a[href], [role=radio], [role=button]', (els) =>
    els
      .filter((el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden')
      .map((el) => ({ el, r: el.getBoundingClientRect() }))
      .filter(({ r }) => r.width < 43.5 || r.height < 43.5)
      .map(({ el, r }) => `${el.tagName.toLowerCase()}${el.getAttribute('data-testid') ? `[${el.getAttribute('data-testid')}]` : ''} "${(el.getAttribute('aria-label') ?? el.textContent ?? '').trim().slice(0, 24)}" ${Math.round(r.width)}×${Math.round(r.height)}`),
  )
}

/**
 * Whatever sticks out: the page scrolling sideways, an element past the
 * viewport's edge, past the drawer, dialog, sheet or bar it belongs to, or
 * a dialog taller than the screen that cannot scroll.
 */
export function cutOff(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const out: string[] = []
    const name = (el: Element) => `${el.tagName.toLowerCase()}${el.getAttribute('data-testid') ? `[${el.getAttribute('data-testid')}]` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.trim().split(/\s+/).join('.')}` : ''}`
    const vw = document.documentElement.clientWidth
    const vh = document.documentElement.clientHeight
    if (document.documentElement.scrollWidth > vw + 1) out.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${vw}`)
    for (const el of document.querySelectorAll('#app *')) {
      if (el.getClientRects().length === 0) continue
      const r = el.getBoundingClientRect()
      if (r.width === 0 || r.height === 0) continue
      // Inside a box that scrolls sideways or clips on purpose (an ellipsis), sticking out is the design.
      let clipped = false
      for (let p = el.parentElement; p && !p.matches('#app, .app'); p = p.parentElement) if (getComputedStyle(p).overflowX !== 'visible') clipped = true
      if (clipped) continue
      if (r.left < -1 || r.right > vw + 1) out.push(`${name(el)} is past the screen's edge: ${Math.round(r.left)}..${Math.round(r.right)} of ${vw}`)
      const box = el.parentElement?.closest('.drawer, .dialog, .sheet, .topbar, .composer')
      if (box) {
        const b = box.getBoundingClientRect()
        if (r.left < b.left - 1 || r.right > b.right + 1) out.push(`${name(el)} sticks out of ${name(box)} by ${Math.round(Math.max(b.left - r.left, r.right - b.right))} px`)
      }
    }
    for (const d of document.querySelectorAll('.dialog, .drawer, .sheet')) {
      const r = d.getBoundingClientRect()
      const scrolls = getComputedStyle(d).overflowY === 'auto' || getComputedStyle(d).overflowY === 'scroll'
      if ((r.top < -1 || r.bottom > vh + 1) && !scrolls) out.push(`${name(d)} is cut off: ${Math.round(r.top)}..${Math.round(r.bottom)} of ${vh} and does not scroll`)
    }
    return out
  })
}

export interface ViewCheck {
  axe: string[]
  small: string[]
  cut: string[]
}

/** Screenshot (kept to be looked at) and every check, for one view at one size. */
export async function checkView(page: Page, name: string, { touch }: { touch: boolean }): Promise<ViewCheck> {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))))
  await screenshot(page, `a11y-${name}`)
  return { axe: await axeViolations(page), small: touch ? await smallTargets(page) : [], cut: await cutOff(page) }
}
