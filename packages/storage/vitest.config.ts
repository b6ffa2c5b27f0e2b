import { defineProject } from 'vitest/config'

export default defineProject({ test: { name: 'storage', testTimeout: 30_000 } })
