#!/usr/bin/env node
// Runs the relay in this process (so signals such as SIGTERM reach it):
// its TypeScript, and the workspace packages' (they ship their sources),
// bundled by esbuild into dist/ at each start, about 0.2 s. Not through
// tsx's loader, which on Node 20 keeps a second V8 heap alive for its
// hooks thread: 50 MB of an idle relay's 130 MB (bench/README.md, "The
// relay's memory"). Third-party packages are not bundled: Node loads them
// from node_modules as it would anyway (pino's transport workers and
// native addons find their files), each named by its resolved path.
import { copyFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { build, stop } from 'esbuild'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dist = join(root, 'dist')

/** Bare imports outside the workspace stay imports, by absolute path (dist/ has no node_modules of its own). */
const thirdPartyByPath = {
  name: 'third-party-by-path',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.path.startsWith('@kai-sync/') || args.path.startsWith('node:') || args.pluginData === 'resolving') return undefined
      const found = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: 'resolving' })
      if (found.errors.length > 0) return { errors: found.errors }
      return { path: found.external ? args.path : pathToFileURL(found.path).href, external: true }
    })
  },
}

let code
try {
  const out = await build({
    entryPoints: [join(root, 'src', 'cli.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'error',
    // Only the conditions Node itself resolves with (esbuild would add
    // `module`), so a package is named by the file Node would load.
    conditions: [],
    plugins: [thirdPartyByPath],
  })
  code = out.outputFiles[0].contents
} catch (e) {
  // A build error esbuild has printed, with file and line; anything else
  // (esbuild itself cannot run: installed for another platform, say) is said here.
  if (!(e.errors?.length > 0)) process.stderr.write(`kai-relay: esbuild could not bundle the relay: ${e.message}\n`)
  process.exit(1)
} finally {
  await stop()
}

// Each start writes its own file and renames it into place, so relays
// started at once never import one another's half-written bundle.
const place = (name, write) => {
  const temp = join(dist, `.${name}.${process.pid}`)
  write(temp)
  renameSync(temp, join(dist, name))
}
let entry = pathToFileURL(join(dist, 'kai-relay.mjs')).href
try {
  mkdirSync(dist, { recursive: true })
  place('verify-worker.mjs', (to) => copyFileSync(join(root, 'src', 'verify-worker.mjs'), to))
  place('kai-relay.mjs', (to) => writeFileSync(to, code))
} catch (e) {
  // A checkout this user may not write to: the sources through tsx, as before.
  process.stderr.write(`kai-relay: cannot write ${dist} (${e.code ?? e.message}); running the sources through tsx, which uses more memory\n`)
  const { register } = await import('tsx/esm/api')
  register()
  entry = pathToFileURL(join(root, 'src', 'cli.ts')).href
}
await import(entry)
