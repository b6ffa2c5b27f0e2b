// Builds the one UI twice: dist/pwa (manifest, service worker, works
// offline) and dist/extension (Manifest V3: popup, tab, side panel, service
// worker; load it unpacked). Run: pnpm build:web
import { build, type BuildOptions, type Metafile, type Plugin } from 'esbuild'
import { readFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { drawIcon } from './icons'

const app = join(dirname(fileURLToPath(import.meta.url)), '..')
export const DIST = join(app, 'dist')
const NAME = 'kai-sync'
const DESCRIPTION = 'Your AI-agent sessions, live in every tab, popup, side panel and phone; end-to-end encrypted.'
const THEME = '#2563eb'

/**
 * lib0/dom (which yjs reaches through lib0/logging) builds four DOM node
 * schemas at load, `$.$custom(predicate)`, without a pure annotation, so a
 * bundler keeps them and all of lib0/schema (6.6 KB) in every page although
 * nothing reads them. They only wrap a predicate in an object: marked pure,
 * they drop out. Fails the build if lib0 changes, rather than silently
 * carrying the schemas again.
 */
function pureLib0DomSchemas(): Plugin {
  return {
    name: 'pure-lib0-dom-schemas',
    setup(b) {
      b.onLoad({ filter: /[\\/]lib0[\\/]dom\.js$/ }, async (args) => {
        const source = await readFile(args.path, 'utf8')
        const marked = source.replaceAll('= $.$custom(', '= /* @__PURE__ */ $.$custom(')
        const count = marked.split('/* @__PURE__ */ $.$custom(').length - 1
        if (count !== 4) throw new Error(`lib0/dom.js: expected 4 schemas built at load, found ${count}; check pureLib0DomSchemas in build.ts`)
        return { contents: marked, loader: 'js' }
      })
    },
  }
}

const common: BuildOptions = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'chrome120',
  // KAI_WEB_MINIFY=0 keeps names readable in a profile (bench/_profile-browser.ts).
  minify: process.env.KAI_WEB_MINIFY !== '0',
  sourcemap: true,
  jsx: 'automatic',
  jsxImportSource: 'preact',
  logLevel: 'warning',
  plugins: [pureLib0DomSchemas()],
}

type Page = 'pwa' | 'popup' | 'tab' | 'sidepanel'

function html(page: Page, title: string, preload: string[], head = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<title>${title}</title>
<link rel="stylesheet" href="styles.css">${preload.map((f) => `\n<link rel="modulepreload" href="${f}">`).join('')}${head}
</head>
<body data-page="${page}">
<div id="app"></div>
<script type="module" src="app.js"></script>
</body>
</html>
`
}

/**
 * Bundles the UI as app.js plus the chunks it loads: what only some views
 * need (the handoff dialog and its QR code, the drawers, the conflict
 * dialog) is imported when it opens, so a page's first load carries less.
 * Chunks are files beside app.js (an extension page loads nothing remote).
 * Returns what esbuild wrote (its metafile: bench/bundle.ts reads it).
 */
async function bundleApp(out: string, target: 'pwa' | 'extension'): Promise<Metafile> {
  const result = await build({
    ...common,
    entryPoints: { app: join(app, 'src/main.tsx') },
    outdir: out,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    metafile: true,
    define: { KAI_TARGET: JSON.stringify(target) },
  })
  copyFileSync(join(app, 'src/styles.css'), join(out, 'styles.css'))
  return result.metafile
}

/**
 * app.js in a build's metafile. Found by its source, not as the output with
 * an entry point: a chunk that is imported dynamically has one too.
 */
export function appEntry(meta: Metafile): string {
  const entry = Object.keys(meta.outputs).find((o) => meta.outputs[o]!.entryPoint?.endsWith('src/main.tsx') && o.endsWith('.js'))
  if (!entry) throw new Error('the build has no app.js (src/main.tsx)')
  return entry
}

/**
 * The chunks app.js imports at once (the app behind the shell) and their
 * static imports, relative to the build's directory: the pages preload them
 * so they arrive beside app.js rather than after it has run.
 */
function appChunks(meta: Metafile, out: string): string[] {
  const entry = appEntry(meta)
  const seen = new Set<string>()
  const visit = (o: string) => {
    if (seen.has(o)) return
    seen.add(o)
    for (const i of meta.outputs[o]!.imports) if (!i.external && i.kind === 'import-statement') visit(i.path)
  }
  for (const i of meta.outputs[entry]!.imports) if (!i.external && i.kind === 'dynamic-import') visit(i.path)
  return [...seen].map((f) => relative(out, resolve(f)).split(sep).join('/')).sort()
}

/** The outputs `from` reaches by static imports. */
function staticClosure(meta: Metafile, from: string[]): Set<string> {
  const seen = new Set<string>()
  const visit = (o: string) => {
    if (seen.has(o)) return
    seen.add(o)
    for (const i of meta.outputs[o]!.imports) if (!i.external && i.kind === 'import-statement') visit(i.path)
  }
  from.forEach(visit)
  return seen
}

/**
 * The files a page runs first: app.js and its static imports (the shell,
 * with the composer of the session last shown, src/early/), as paths
 * relative to the working directory.
 */
export function firstLoadOutputs(meta: Metafile): string[] {
  return [...staticClosure(meta, [appEntry(meta)])]
}

/**
 * The files a page runs before its session view shows: the first load and
 * the app chunks (appChunks). What a view loads when it opens is not among
 * them.
 */
export function sessionViewOutputs(meta: Metafile): string[] {
  const entry = appEntry(meta)
  const app = meta.outputs[entry]!.imports.filter((i) => !i.external && i.kind === 'dynamic-import').map((i) => i.path)
  return [...staticClosure(meta, [entry, ...app])]
}

/** The source files in some outputs of a build. */
export function inputsOf(meta: Metafile, outputs: string[]): string[] {
  return outputs.flatMap((o) => Object.keys(meta.outputs[o]!.inputs)).sort()
}

/** The JavaScript files a build wrote, relative to its directory. */
function scriptsOf(meta: Metafile, out: string): string[] {
  return Object.keys(meta.outputs)
    .filter((f) => f.endsWith('.js'))
    .map((f) => relative(out, resolve(f)).split(sep).join('/'))
    .sort()
}

function writeIcons(out: string, sizes: number[], maskable = false): void {
  mkdirSync(join(out, 'icons'), { recursive: true })
  for (const size of sizes) writeFileSync(join(out, `icons/icon-${size}.png`), drawIcon(size))
  if (maskable) writeFileSync(join(out, 'icons/maskable-512.png'), drawIcon(512, { maskable: true }))
}

async function buildPwa(): Promise<Metafile> {
  const out = join(DIST, 'pwa')
  const meta = await bundleApp(out, 'pwa')
  writeIcons(out, [192, 512], true)
  writeFileSync(
    join(out, 'manifest.webmanifest'),
    JSON.stringify(
      {
        name: NAME,
        short_name: NAME,
        description: DESCRIPTION,
        id: './',
        start_url: './',
        scope: './',
        display: 'standalone',
        background_color: '#f7f8fa',
        theme_color: THEME,
        icons: [
          { src: 'icons/icon-192.png', sizes: '192x192', type: 'image/png' },
          { src: 'icons/icon-512.png', sizes: '512x512', type: 'image/png' },
          { src: 'icons/maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
        ],
      },
      null,
      2,
    ),
  )
  writeFileSync(
    join(out, 'index.html'),
    html('pwa', NAME, appChunks(meta, out), `\n<link rel="manifest" href="manifest.webmanifest">\n<meta name="theme-color" content="${THEME}">\n<link rel="icon" href="icons/icon-192.png">\n<link rel="apple-touch-icon" href="icons/icon-192.png">`),
  )
  // The app shell the service worker keeps for offline use, versioned by
  // content: every chunk too, so a view opened offline still loads.
  const shell = ['./', 'index.html', ...scriptsOf(meta, out), 'styles.css', 'manifest.webmanifest', 'icons/icon-192.png', 'icons/icon-512.png']
  const version = createHash('sha256')
  for (const f of shell.slice(1)) version.update(readFileSync(join(out, f)))
  await build({
    ...common,
    entryPoints: [join(app, 'src/pwa/service-worker.ts')],
    outfile: join(out, 'sw.js'),
    define: { KAI_SHELL: JSON.stringify(shell), KAI_VERSION: JSON.stringify(version.digest('hex').slice(0, 12)) },
  })
  return meta
}

async function buildExtension(): Promise<Metafile> {
  const out = join(DIST, 'extension')
  const meta = await bundleApp(out, 'extension')
  // 192 too: the pages' brand mark and favicon name it (the manifest names the other four).
  writeIcons(out, [16, 32, 48, 128, 192])
  await build({ ...common, entryPoints: [join(app, 'src/extension/background.ts')], outfile: join(out, 'background.js') })
  const preload = appChunks(meta, out)
  writeFileSync(join(out, 'popup.html'), html('popup', NAME, preload))
  writeFileSync(join(out, 'kai.html'), html('tab', NAME, preload))
  writeFileSync(join(out, 'panel.html'), html('sidepanel', NAME, preload))
  const icons = { 16: 'icons/icon-16.png', 32: 'icons/icon-32.png', 48: 'icons/icon-48.png', 128: 'icons/icon-128.png' }
  const { key } = JSON.parse(readFileSync(join(app, 'static/extension-key.json'), 'utf8')) as { key: string }
  writeFileSync(
    join(out, 'manifest.json'),
    JSON.stringify(
      {
        manifest_version: 3,
        name: NAME,
        version: '0.1.0',
        description: DESCRIPTION,
        // The public half only: pins the extension id across machines (see static/extension-key.json).
        key,
        icons,
        action: { default_popup: 'popup.html', default_title: NAME, default_icon: icons },
        side_panel: { default_path: 'panel.html' },
        background: { service_worker: 'background.js', type: 'module' },
        permissions: ['sidePanel'],
        minimum_chrome_version: '120',
      },
      null,
      2,
    ),
  )
  return meta
}

/** What each build's app.js and chunks hold (esbuild's metafiles; paths relative to the working directory). */
export interface WebBuild {
  pwa: Metafile
  extension: Metafile
}

/** Where buildWeb leaves each build's metafile (beside, not inside, what is served). */
export const METAFILES = { pwa: join(DIST, 'metafile-pwa.json'), extension: join(DIST, 'metafile-extension.json') }

export async function buildWeb(): Promise<WebBuild> {
  rmSync(DIST, { recursive: true, force: true })
  const [pwa, extension] = await Promise.all([buildPwa(), buildExtension()])
  writeFileSync(METAFILES.pwa, JSON.stringify(pwa))
  writeFileSync(METAFILES.extension, JSON.stringify(extension))
  return { pwa, extension }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = performance.now()
  await buildWeb()
  console.log(`built ${join(DIST, 'pwa')} and ${join(DIST, 'extension')} in ${Math.round(performance.now() - started)} ms`)
}
