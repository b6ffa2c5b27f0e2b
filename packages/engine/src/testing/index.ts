// Test helpers for every package that builds on the engine: a seeded
// simulated network, convergence assertions, and the attacks of a member
// who cheats. Import as `@kai-sync/engine/testing`; nothing here belongs
// in production code.
export { SimNetwork, type SimNode, type SimGuard, type SimMessage, type NetworkFaults } from './sim-network'
export { createSimSession, addReplica, settle, recordOf, assertConverged, type Replica, type SimSession, type SimHub } from './replicas'
export { seededRandom } from './seed'
export { reopenReplica } from './reopen'
export { MemoryDroppedOwnStore } from './memory-dropped-own-store'
export {
  ATTACK_KINDS,
  REFUSED_AS,
  hijack,
  equivocate,
  overclaim,
  copyCovers,
  forge,
  readerWrite,
  replay,
  garbage,
  honestlyHostile,
  withoutDeletions,
  foreignKeys,
  positionOf,
  type Attack,
  type RelayVerdict,
  type AttackKind,
  type HostileContext,
} from './hostile'
export { runHostileSchedule, emptyAttackCounts, type AttackCounts, type HostileSchedule, type HostileScheduleOptions, type SettledSchedule } from './hostile-schedule'
