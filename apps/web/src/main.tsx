import { render } from 'preact'
import { App } from './app'
import { currentPage, modeOf } from './page-mode'
import { takeQuerySettings } from './link-settings'
import { preloadViews } from './lazy-components'

const { offeredRelay } = takeQuerySettings()
const page = currentPage()
render(<App page={page} mode={modeOf(page)} offeredRelay={offeredRelay} />, document.getElementById('app')!)
preloadViews()

if (KAI_TARGET === 'pwa' && 'serviceWorker' in navigator) {
  // The app shell for offline use; failing to register leaves the app working online.
  navigator.serviceWorker.register('sw.js').catch((e: unknown) => console.warn('offline support unavailable:', e))
}
// A page restored from the back/forward cache had closed its session on pagehide.
addEventListener('pageshow', (e) => {
  if (e.persisted) location.reload()
})
