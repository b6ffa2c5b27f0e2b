import { defineProject } from 'vitest/config'

// End-to-end tests in real Chromium against the built app (built once, in globalSetup).
export default defineProject({
  test: { sequence: { groupOrder: 4 }, name: 'web', testTimeout: 90_000, hookTimeout: 90_000, fileParallelism: false, globalSetup: ['./tests/build-once.ts'] },
})
