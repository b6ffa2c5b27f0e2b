import { defineConfig } from 'vitest/config'

// One test project per package or app; each runs its own `*.test.ts` files.
// The unit projects run side by side (group 0, the default); the projects
// that start browsers, daemons and relays each declare a later group in
// their own config (sequence.groupOrder) and so run one after another: on
// two cores, running them all at once starves their timeouts.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*'],
  },
})
