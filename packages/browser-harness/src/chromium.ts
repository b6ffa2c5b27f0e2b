import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'

// Debian's Chromium, driven by playwright-core: never a downloaded browser.
// Flags as verified in shared/BROWSER-TESTING.md: without the background
// networking ones Chromium floods the closed network with attempts.
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

export function chromiumPath(): string {
  const path = process.env.KAI_CHROMIUM ?? '/usr/bin/chromium'
  if (!existsSync(path)) {
    throw new Error(`no Chromium at ${path}: run \`apt-get update && apt-get install -y chromium\`, or set KAI_CHROMIUM to a Chromium binary`)
  }
  return path
}

export interface LaunchOptions {
  /** An unpacked MV3 extension directory to load. */
  extension?: string
  viewport?: { width: number; height: number }
  /** Emulates a phone: touch, mobile viewport meta, device scale factor. */
  mobile?: boolean
  /** Reopens the profile another launch left (after `kill`), instead of a fresh one. */
  root?: string
  /** No service worker registers: every request reaches the network (and a page's `route`), as on a first visit. */
  blockServiceWorkers?: boolean
}

/** One Chromium profile: a persistent context in a fresh temp dir, removed on close. */
export interface ChromiumProfile {
  readonly context: BrowserContext
  /** The extension's id, when one was loaded. */
  readonly extensionId: string | undefined
  /** The profile's directory: pass it as `root` to launch this profile again. */
  readonly root: string
  newPage(url?: string): Promise<Page>
  /** SIGKILLs every process of this browser, as a crash or a power cut would end it; the profile stays. */
  kill(): Promise<void>
  close(): Promise<void>
}

export async function launchChromium(options: LaunchOptions = {}): Promise<ChromiumProfile> {
  const root = options.root ?? mkdtempSync(join(tmpdir(), 'kai-chromium-'))
  const args = [...FLAGS]
  if (options.extension) args.push(`--disable-extensions-except=${options.extension}`, `--load-extension=${options.extension}`)
  const context = await chromium.launchPersistentContext(join(root, 'profile'), {
    executablePath: chromiumPath(),
    headless: true,
    args,
    // Keeps crash reports and caches out of the home directory.
    env: { ...process.env, XDG_CONFIG_HOME: join(root, 'config'), XDG_CACHE_HOME: join(root, 'cache') },
    viewport: options.viewport ?? { width: 1100, height: 760 },
    ...(options.mobile ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}),
    ...(options.blockServiceWorkers ? { serviceWorkers: 'block' as const } : {}),
  })
  let extensionId: string | undefined
  if (options.extension) {
    const worker = context.serviceWorkers()[0] ?? (await context.waitForEvent('serviceworker'))
    extensionId = new URL(worker.url()).host
  }
  // The persistent context opens with one blank page; tests open their own.
  for (const page of context.pages()) await page.close()
  return {
    context,
    extensionId,
    async newPage(url) {
      const page = await context.newPage()
      if (url) await page.goto(url)
      return page
    },
    root,
    async kill() {
      const closed = new Promise((resolve) => context.once('close', resolve))
      for (const pid of processesNaming(root)) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
      await closed
    },
    async close() {
      await context.close()
      rmSync(root, { recursive: true, force: true })
    },
  }
}

/** The pids whose command line names `text` (Linux: /proc). */
function processesNaming(text: string): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry))
    } catch {
      // ended while we looked
    }
  }
  return pids
}
