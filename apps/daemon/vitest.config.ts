import { defineProject } from 'vitest/config'

// The daemon's tests spawn real processes (daemons, the CLI, a relay), so
// they get generous timeouts and run one file at a time on a shared machine.
export default defineProject({ test: { sequence: { groupOrder: 2 }, name: 'daemon', testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false } })
