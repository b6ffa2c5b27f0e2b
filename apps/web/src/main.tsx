import { render } from 'preact'
import { AppShell } from './app-shell'
import { currentPage, modeOf } from './page-mode'
import { takeQuerySettings } from './link-settings'

const { offeredRelay } = takeQuerySettings()
const page = currentPage()
const mode = modeOf(page)
const root = document.getElementById('app')!
// The first frame comes from the shell alone; the app (engine, yjs, crypto,
// schemas) is fetched at once beside it and takes over when it has run.
render(<AppShell page={page} mode={mode} />, root)
import('./app').then(
  ({ App, preloadViews }) => {
    render(<App page={page} mode={mode} offeredRelay={offeredRelay} />, root)
    preloadViews()
  },
  (e: unknown) => render(<AppShell page={page} mode={mode} failed={e instanceof Error ? e.message : String(e)} />, root),
)

if (KAI_TARGET === 'pwa' && 'serviceWorker' in navigator) {
  // The app shell for offline use; failing to register leaves the app working online.
  navigator.serviceWorker.register('sw.js').catch((e: unknown) => console.warn('offline support unavailable:', e))
}
// A page restored from the back/forward cache had closed its session on pagehide.
addEventListener('pageshow', (e) => {
  if (e.persisted) location.reload()
})
