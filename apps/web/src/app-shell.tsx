import { isCompact, type Page } from './page-mode'
import type { Mode } from '@kai-sync/model'

// What a page draws before the app's code is there: the frame the app opens
// in (brand, the sidebar on wide pages, an empty main marked busy), from
// preact alone. The engine, yjs, the crypto and the schemas (most of the
// JavaScript) arrive in the app chunk, fetched at once; this lets the first
// frame be drawn while they load and parse.

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
  return (
    <div class={`app ${compact ? 'compact' : 'wide'} page-${page} mode-${mode}`} data-mode={mode}>
      {!compact && (
        <aside class="sidebar">
          <Brand />
        </aside>
      )}
      {failed === null ? (
        <Opening />
      ) : (
        <main class="main problem" data-testid="app-load-failed">
          <h1>The app could not be loaded</h1>
          <p role="alert">Its code did not arrive ({failed}). Check the connection and reload the page.</p>
        </main>
      )}
    </div>
  )
}
