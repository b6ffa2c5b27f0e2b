import { readFileSync } from 'node:fs'
import type { Metafile } from 'esbuild'
import { describe, expect, it } from 'vitest'
import { METAFILES, firstLoadOutputs, inputsOf, sessionViewOutputs } from '../build/build'

// What a phone downloads and parses before a person can type (issue 16).
// First the shell, whose composer takes typing and sending for the session
// last shown (src/early/): preact and the app's own code, none of the
// session's machinery. Then, before the session view shows, the app: code
// that only a later step needs is fetched when that step comes, not with
// it. Each entry of LATER names a dependency the session view must not
// carry and when it is fetched instead.
const LATER = [
  { what: 'the relay socket (y-websocket)', pattern: /node_modules\/.*\/y-websocket\//, when: 'with the first relay link (relay-link.ts)' },
  { what: 'the relay link (relay-link.ts: Web Lock, capability signing)', pattern: /packages\/browser\/src\/relay-link\.ts$/, when: 'with a session\'s first relay connection (relay-connector.ts)' },
  { what: 'the relay capability', pattern: /packages\/crypto\/src\/capability\.ts$/, when: 'with the relay link (@kai-sync/crypto/capability)' },
  { what: 'the relay client (connectRelay)', pattern: /packages\/providers\//, when: 'with the first relay link' },
  { what: 'noble Ed25519 (pure JavaScript)', pattern: /@noble\/ed25519|crypto\/src\/ed25519-noble/, when: 'with a handoff, or where WebCrypto has no Ed25519' },
  // A file a package's index re-exports goes wherever the index goes (a
  // bundler splitting code keeps it with the barrel), so what only a later
  // step needs is an entry of its own (@kai-sync/crypto/handoff-token and
  // /capability, @kai-sync/model/record and /exchange-schemas).
  { what: 'the handoff token', pattern: /packages\/crypto\/src\/handoff-token\.ts$/, when: 'with a handoff' },
  { what: 'the session record (toRecord)', pattern: /packages\/model\/src\/record\.ts$/, when: 'with a handoff' },
  { what: 'the record and handoff schemas (exchange-schemas.ts)', pattern: /packages\/model\/src\/exchange-schemas\.ts$/, when: 'with a handoff' },
  { what: 'the QR code encoder', pattern: /node_modules\/.*\/qrcode\//, when: 'with the handoff dialog' },
  { what: 'the demo agent', pattern: /apps\/web\/src\/demo-agent\.ts$/, when: 'as the session opens (demo-agent-loader.ts)' },
  { what: 'preact/compat (the history rows use memo.ts)', pattern: /\/preact\/compat\//, when: 'never' },
  // The schemas are zod's mini build: classic zod (its methods, 95 KB
  // minified, or its 64 locales, 258 KB) must not come back through an
  // `import { z } from 'zod'` anywhere the browser reaches. Only the daemon
  // and the relay use it.
  { what: 'classic zod', pattern: /\/zod\/(index\.js|v4\/index\.js|v4\/classic\/)/, when: 'never (the schemas use zod/mini)' },
  { what: "zod's locales other than English", pattern: /\/zod\/v4\/locales\/(?!en\.js$|index\.js$)/, when: 'never' },
  { what: 'lib0/schema (only lib0/dom\'s unused node schemas name it)', pattern: /\/lib0\/schema\.js$/, when: 'never (build.ts: pureLib0DomSchemas)' },
]

describe('the first load, until the composer takes typing and sending', () => {
  for (const target of ['pwa', 'extension'] as const) {
    it(`in the ${target === 'pwa' ? 'PWA' : "extension's pages"}, is the shell with its composer, without the session's machinery`, () => {
      const meta = JSON.parse(readFileSync(METAFILES[target], 'utf8')) as Metafile
      const inputs = inputsOf(meta, firstLoadOutputs(meta))
      for (const needed of ['apps/web/src/app-shell.tsx', 'apps/web/src/early/early-session.tsx', 'apps/web/src/early/early-outbox.ts', 'apps/web/src/components/composer.tsx'])
        expect(inputs.some((i) => i.endsWith(needed)), needed).toBe(true)
      const machinery = [/node_modules\/.*\/yjs\//, /node_modules\/.*\/zod\//, /node_modules\/.*\/lib0\//, /packages\/(engine|crypto|model|browser)\//, /node_modules\/.*\/@noble\//]
      expect(inputs.filter((i) => machinery.some((m) => m.test(i)))).toEqual([])
    })
  }
})

describe('the app, until the session view shows', () => {
  for (const target of ['pwa', 'extension'] as const) {
    it(`in the ${target === 'pwa' ? 'PWA' : "extension's pages"}, leaves out what later steps load`, () => {
      const meta = JSON.parse(readFileSync(METAFILES[target], 'utf8')) as Metafile
      const inputs = inputsOf(meta, sessionViewOutputs(meta))
      // The session view's load is the real one: it holds the engine and yjs.
      expect(inputs.some((i) => i.includes('packages/engine/src/sync-engine.ts'))).toBe(true)
      expect(inputs.some((i) => /node_modules\/.*\/yjs\//.test(i))).toBe(true)
      // zod's mini build alone says only "Invalid input"; the English locale
      // (model/src/schemas.ts) keeps refusals readable.
      expect(inputs.some((i) => /\/zod\/v4\/locales\/en\.js$/.test(i)), "zod's English messages").toBe(true)
      for (const { what, pattern, when } of LATER) expect(inputs.filter((i) => pattern.test(i)), `${what}: fetched ${when}`).toEqual([])
    })

    it(`in the ${target === 'pwa' ? 'PWA' : "extension's pages"}, never loads the daemon's REST schemas (nor zod's URL schema, which only they use)`, () => {
      const meta = JSON.parse(readFileSync(METAFILES[target], 'utf8')) as Metafile
      const everything = Object.values(meta.outputs).flatMap((o) => Object.keys(o.inputs))
      expect(everything.filter((i) => i.endsWith('packages/model/src/rest-schemas.ts'))).toEqual([])
      const text = Object.keys(meta.outputs)
        .filter((f) => f.endsWith('.js'))
        .map((f) => readFileSync(f, 'utf8'))
        .join('\n')
      expect(text).not.toContain('"$ZodURL"')
    })

    it(`in the ${target === 'pwa' ? 'PWA' : "extension's pages"}, carries SHA-256 but not SHA-512 (only noble's Ed25519 uses it, through WebCrypto)`, () => {
      const meta = JSON.parse(readFileSync(METAFILES[target], 'utf8')) as Metafile
      // @noble/hashes' sha2.js holds both; what of it a chunk carries shows in its round constants.
      const text = sessionViewOutputs(meta)
        .map((f) => readFileSync(f, 'utf8'))
        .join('\n')
      expect(text).toContain('1116352408') // SHA-256's first round constant, 0x428a2f98
      expect(text).not.toContain('428a2f98d728ae22') // SHA-512's
    })
  }
})
