import { defineProject } from 'vitest/config'

export default defineProject({ test: { name: 'providers', testTimeout: 30_000 } })
