import { build } from 'esbuild'
import { serveStatic, type StaticServer } from './static-server'

/** Bundles a TypeScript entry for the browser, in memory. */
export async function bundleForBrowser(entry: string): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    write: false,
    sourcemap: 'inline',
    logLevel: 'silent',
  })
  return result.outputFiles[0]!.text
}

/**
 * Serves a page that runs `entry` as a module: the way a package's browser
 * code is tested against real IndexedDB, BroadcastChannel and WebCrypto.
 * The entry puts what the test calls on `window`.
 */
export async function servePageScript(entry: string): Promise<StaticServer> {
  const script = await bundleForBrowser(entry)
  return serveStatic({
    files: {
      '/': '<!doctype html><meta charset="utf-8"><title>test</title><script type="module" src="/test.js"></script>',
      '/test.js': script,
    },
  })
}
