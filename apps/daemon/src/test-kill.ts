import { writeSync } from 'node:fs'
import type { CompactionStep, SyncEngine } from '@kai-sync/engine'

// Test only. `KAI_TEST_KILL_AT=point[,point…]` makes the daemon SIGKILL
// itself when it reaches one of the named points, so the kill test lands a
// kill exactly there (mid-compaction, mid-handoff) instead of by chance.
// Unset (always, outside that test) it does nothing.

export type KillPoint =
  | `compaction:${CompactionStep}`
  /** The source: the relay registered the handoff token; the link is not printed yet. */
  | 'handoff:registered'
  /** The target: the relay burned the token for this device; nothing synced yet. */
  | 'handoff:claimed'
  /** The target: its enrolment is in its wire doc, not yet stored or surely sent. */
  | 'handoff:enrolled'
  /** The target: a key grant for it arrived; the session is not hosted yet. */
  | 'handoff:keyed'

const armed = new Set((process.env.KAI_TEST_KILL_AT ?? '').split(',').filter(Boolean))

export const killPointsArmed = armed.size > 0

/** SIGKILLs this process if `point` is armed, after saying so on stderr. */
export function killPoint(point: KillPoint): void {
  if (!armed.has(point)) return
  writeSync(2, `test kill at ${point}\n`)
  process.kill(process.pid, 'SIGKILL')
}

/** Engine options for the compaction points (none unless armed). */
export function compactionKillPoints(): { onCompactionStep?: (step: CompactionStep) => void } {
  return killPointsArmed ? { onCompactionStep: (step) => killPoint(`compaction:${step}`) } : {}
}

/** The target's points of a handoff under way on `engine` (nothing unless armed). */
export function watchHandoffKillPoints(engine: SyncEngine): void {
  if (!killPointsArmed) return
  engine.roster.on('change', () => {
    if (engine.role !== undefined) killPoint('handoff:enrolled')
  })
  engine.on('key', () => killPoint('handoff:keyed'))
}
