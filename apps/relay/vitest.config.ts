import { defineProject } from 'vitest/config'

// The relay's tests spawn relays, Redis and PostgreSQL: a later group than
// the unit projects, one file at a time, so their timeouts hold on two cores.
export default defineProject({
  test: { sequence: { groupOrder: 1 }, name: 'relay', testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false },
})
