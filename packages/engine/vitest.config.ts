import { defineProject } from 'vitest/config'

export default defineProject({ test: { name: 'engine', testTimeout: 60_000 } })
