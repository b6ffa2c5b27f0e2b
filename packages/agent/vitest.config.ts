import { defineProject } from 'vitest/config'

export default defineProject({ test: { name: 'agent', testTimeout: 30_000 } })
