import { defineConfig } from 'vitest/config'

// One test project per package or app; each runs its own `*.test.ts` files.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*'],
  },
})
