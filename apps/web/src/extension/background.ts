// The extension's service worker. Sessions live in the pages (IndexedDB
// and BroadcastChannel are shared by popup, tab and side panel, which are
// one origin); the worker only wires the toolbar button and side panel.
import { chromeApi } from './chrome-api'

chromeApi?.runtime.onInstalled.addListener(() => {
  // The toolbar button opens the popup; the popup offers the side panel.
  void chromeApi?.sidePanel?.setPanelBehavior({ openPanelOnActionClick: false })
})
