// `pnpm boundaries`, part of `pnpm test`: the dependency rules the layout
// promises, checked on every import in the repository.
//   1. Nothing imports an app's files: outside `apps/X`, no relative import
//      reaches into `apps/`. Bench and scripts use an app only through the
//      entries its package.json exports (`@kai-sync/web/build`).
//   2. No package depends on an app (`@kai-sync/relay`, `daemon`, `web`).
//   3. The relay's server (everything `cli.ts` and `index.ts` reach) imports
//      no client package: it speaks the protocol from `@kai-sync/engine`
//      and serves handoffs from `@kai-sync/handoff/registry`.
// Exits 1 and names each import that breaks a rule.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const APP_PACKAGES = ['@kai-sync/relay', '@kai-sync/daemon', '@kai-sync/web']
const CLIENT_PACKAGES = ['@kai-sync/providers', '@kai-sync/handoff', '@kai-sync/browser']
const RELAY_ENTRIES = ['apps/relay/src/cli.ts', 'apps/relay/src/index.ts']

function sources(dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name === 'node_modules' || entry.name === 'dist') return []
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sources(path)
    return /\.(ts|tsx|mts|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : []
  })
}

/** Every module specifier a file imports or re-exports, static or dynamic. */
export function specifiers(text: string): string[] {
  const found: string[] = []
  for (const m of text.matchAll(/(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    found.push((m[1] ?? m[2] ?? m[3])!)
  }
  return found
}

const rel = (path: string) => relative(root, path).split(sep).join('/')

/** The app a file belongs to ('apps/relay'), or null. */
function appOf(path: string): string | null {
  const parts = rel(path).split('/')
  return parts[0] === 'apps' && parts[1] ? `apps/${parts[1]}` : null
}

/** A relative specifier resolved to a file, trying the extensions TypeScript would. */
function resolveRelative(from: string, spec: string): string | null {
  const base = resolve(dirname(from), spec)
  for (const candidate of [base, `${base}.ts`, `${base}.tsx`, join(base, 'index.ts')]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate
  }
  return null
}

const problems: string[] = []
const files = ['packages', 'apps', 'bench', 'scripts'].flatMap((d) => sources(join(root, d)))
const imports = new Map(files.map((f) => [f, specifiers(readFileSync(f, 'utf8'))]))

for (const [file, specs] of imports) {
  const app = appOf(file)
  for (const spec of specs) {
    if (spec.startsWith('.')) {
      const target = rel(resolve(dirname(file), spec))
      if (target.startsWith('apps/') && !(app && (target === app || target.startsWith(`${app}/`)))) {
        problems.push(`${rel(file)} imports ${spec}: files of an app are imported only through its package's exports`)
      }
    } else if (rel(file).startsWith('packages/') && APP_PACKAGES.some((p) => spec === p || spec.startsWith(`${p}/`))) {
      problems.push(`${rel(file)} imports ${spec}: a package never depends on an app`)
    }
  }
}

// 3: walk the relay server's own modules from its entries.
const seen = new Set<string>()
const queue = RELAY_ENTRIES.map((e) => join(root, e))
while (queue.length > 0) {
  const file = queue.pop()!
  if (seen.has(file)) continue
  seen.add(file)
  for (const spec of imports.get(file) ?? specifiers(readFileSync(file, 'utf8'))) {
    if (spec.startsWith('.')) {
      const target = resolveRelative(file, spec)
      if (target) queue.push(target)
    } else if (CLIENT_PACKAGES.includes(spec) || CLIENT_PACKAGES.some((p) => spec.startsWith(`${p}/`) && spec !== '@kai-sync/handoff/registry')) {
      problems.push(`${rel(file)} imports ${spec}: the relay's server imports no client package`)
    }
  }
}

if (problems.length > 0) {
  process.stderr.write(`boundaries: ${problems.length} import(s) break the layout's rules\n${problems.map((p) => `  ${p}\n`).join('')}`)
  process.exit(1)
}
process.stdout.write(`boundaries: ${files.length} files, ${seen.size} in the relay's server: every import keeps the rules\n`)
