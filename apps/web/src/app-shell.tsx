import { isCompact, type Page } from './page-mode'
import type { Mode } from '@kai-sync/model'
import { EarlySession } from './early/early-session'
import { earlyTarget } from './early/last-session'

// What a page draws before the app's code is there: the frame the app opens
// in (brand, the sidebar on wide pages), from preact alone, with the session
// this browser last showed ready to take typing and sending (early/), or an
// empty main marked busy. The engine, yjs, the crypto and the schemas (most
// of the JavaScript) arrive in the app chunk, fetched at once; this lets a
// person write while they load and parse.

export function Brand() {
  return (
    <div class="brand">
      <img src="icons/icon-192.png" alt="" width={24} height={24} />
      <span>kai-sync</span>
    </div>
  )
}

/** The main area while the app or a session is being opened: the same in the shell and the app, so nothing jumps. */
export function Opening() {
  return (
    <main class="main loading" aria-busy="true" data-testid="opening">
      <p>Opening…</p>
    </main>
  )
}

export function AppShell({ page, mode, failed = null }: { page: Page; mode: Mode; failed?: string | null }) {
  const compact = isCompact(page, mode)
  const target = earlyTarget(location.hash)
  const problem = failed !== null && (
    <div class="load-failed" data-testid="app-load-failed">
      <h1>The app could not be loaded</h1>
      <p role="alert">
        Its code did not arrive ({failed}). Check the connection and reload the page.{target && ' What you send here is kept on this device, sealed, and sent when the app opens.'}
      </p>
    </div>
  )
  return (
    <div class={`app ${compact ? 'compact' : 'wide'} page-${page} mode-${mode}`} data-mode={mode}>
      {!compact && (
        <aside class="sidebar">
          <Brand />
        </aside>
      )}
      {target ? <EarlySession session={target} problem={problem || null} /> : problem ? <main class="main problem load-failed-page">{problem}</main> : <Opening />}
    </div>
  )
}
