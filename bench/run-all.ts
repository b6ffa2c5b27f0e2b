// Runs every benchmark, each in a fresh process, one after another, and
// prints their tables. `pnpm bench` runs them all; `pnpm bench <name>` one.
// engine-throughput is pinned to one core with taskset where available.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const ONE_CORE = new Set(['engine-throughput'])
const only = process.argv.slice(2)
const benches = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && !['lib.ts', 'run-all.ts'].includes(f) && !f.startsWith('_'))
  .map((f) => f.replace(/\.ts$/, ''))
  .concat(readdirSync(here, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `${d.name}/index`))
  .filter((name) => only.length === 0 || only.some((o) => name.startsWith(o)))

const hasTaskset = spawnSync('taskset', ['--version']).status === 0
let failed = 0
for (const name of benches) {
  const file = join(here, `${name}.ts`)
  const tsx = join(here, '..', 'node_modules', '.bin', 'tsx')
  const [cmd, args] = ONE_CORE.has(name) && hasTaskset ? ['taskset', ['-c', '0', tsx, file]] : [tsx, [file]]
  console.log(`\n## ${name}${ONE_CORE.has(name) && hasTaskset ? ' (one core)' : ''}`)
  const r = spawnSync(cmd, args as string[], { stdio: 'inherit' })
  if (r.status !== 0) failed++
}
console.log(`\n${benches.length - failed} benchmarks ran, ${failed} failed`)
process.exit(failed ? 1 : 0)
