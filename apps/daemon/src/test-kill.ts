import { writeSync } from 'node:fs'
import type { CompactionStep, DroppedOwnStore, SyncEngine } from '@kai-sync/engine'
import type { StoreCompactionStep, WirePersistenceOptions } from './wire-persistence'

// Test only. `KAI_TEST_KILL_AT=point[,point…]` makes the daemon SIGKILL
// itself when it reaches one of the named points, so the kill test lands a
// kill exactly there (mid-compaction, mid-handoff) instead of by chance.
// Unset (always, outside that test) it does nothing. So does
// `KAI_TEST_STORE_COMPACT_AFTER=N`, which makes the store compact a session
// every N appends instead of 200, so that a short test reaches it.

export type KillPoint =
  | `compaction:${CompactionStep}`
  /** The daemon's own store compaction (wire-persistence.ts): merged update stored, replaced ones not yet removed; or removed. */
  | `store-compaction:${StoreCompactionStep}`
  /** The source: the relay registered the handoff token; the link is not printed yet. */
  | 'handoff:registered'
  /** The target: the relay burned the token for this device; nothing synced yet. */
  | 'handoff:claimed'
  /** The target: its enrolment is in its wire doc, not yet stored or surely sent. */
  | 'handoff:enrolled'
  /** The target: a key grant for it arrived; the session is not hosted yet. */
  | 'handoff:keyed'
  /**
   * An envelope of this device's that the log dropped (a stale-epoch
   * tombstone) is in `sessions/<id>.dropped.json`, and the wire store holds
   * the deletion: the content is on disk there and nowhere else on this device.
   */
  | 'dropped:kept'

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

/** Store options for the store compaction points and the test's lower threshold (none outside the kill test). */
export function storeCompactionTuning(): WirePersistenceOptions {
  const every = Number(process.env.KAI_TEST_STORE_COMPACT_AFTER)
  return {
    ...(Number.isInteger(every) && every > 0 ? { compactAfter: every } : {}),
    ...(killPointsArmed ? { onCompactionStep: (step: StoreCompactionStep) => killPoint(`store-compaction:${step}`) } : {}),
  }
}

/** The target's points of a handoff under way on `engine` (nothing unless armed). */
export function watchHandoffKillPoints(engine: SyncEngine): void {
  if (!killPointsArmed) return
  engine.roster.on('change', () => {
    if (engine.role !== undefined) killPoint('handoff:enrolled')
  })
  engine.on('key', () => killPoint('handoff:keyed'))
}

/**
 * The store the engines get: `store` itself unless armed; armed, it dies at
 * `dropped:kept` once a kept envelope is on disk and `whenStored(session)`
 * (the wire store) resolved, so the deletion that dropped it is stored too.
 */
export function droppedKillPoint(store: DroppedOwnStore, whenStored: (sessionId: string) => Promise<void>): DroppedOwnStore {
  if (!killPointsArmed) return store
  return {
    load: (sessionId) => store.load(sessionId),
    forget: (sessionId, key) => store.forget(sessionId, key),
    keep: async (sessionId, key, envelope) => {
      await store.keep(sessionId, key, envelope)
      await whenStored(sessionId)
      killPoint('dropped:kept')
    },
  }
}
