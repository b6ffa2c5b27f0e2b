import { defineProject } from 'vitest/config'

// Runs in Node, driving real Chromium: every test opens its own profile.
export default defineProject({ test: { sequence: { groupOrder: 3 }, name: 'browser', testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false } })
