import type { Mode } from '@kai-sync/model'

/** Which page this is: the PWA, or one of the extension's three. */
export type Page = 'pwa' | 'popup' | 'tab' | 'sidepanel'

export function currentPage(): Page {
  const page = document.body.dataset.page
  return page === 'popup' || page === 'tab' || page === 'sidepanel' ? page : 'pwa'
}

/**
 * The seed's mode for this context. The PWA is how the "mobile" and
 * "desktop" modes are served: a phone (coarse pointer, small screen) is
 * mobile, an installed window on a computer is desktop, a browser tab a tab.
 */
export function modeOf(page: Page): Mode {
  if (page !== 'pwa') return page
  const phone = matchMedia('(pointer: coarse)').matches && Math.min(screen.width, screen.height) < 700
  if (phone) return 'mobile'
  return matchMedia('(display-mode: standalone)').matches ? 'desktop' : 'tab'
}

export const MODE_LABELS: Record<Mode, string> = {
  popup: 'Popup',
  tab: 'Tab',
  sidepanel: 'Side panel',
  mobile: 'Phone',
  desktop: 'Desktop app',
  headless: 'Headless',
}

/** How this context introduces itself in the others' presence. */
export function contextLabel(page: Page, mode: Mode): string {
  if (page === 'pwa') return mode === 'tab' ? 'Browser tab' : MODE_LABELS[mode]
  return `Extension ${MODE_LABELS[mode].toLowerCase()}`
}

/** Narrow pages show one column, with sessions and settings as sheets. */
export function isCompact(page: Page, mode: Mode): boolean {
  return page === 'popup' || page === 'sidepanel' || mode === 'mobile'
}
