export { launchChromium, chromiumPath, type ChromiumProfile, type LaunchOptions } from './chromium'
export { serveStatic, type StaticServer, type StaticServerOptions } from './static-server'
export { bundleForBrowser, servePageScript } from './page-bundle'
export type { Page, BrowserContext } from 'playwright-core'
