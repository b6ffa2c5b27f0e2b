export { WireDoc, type WireInsertions } from './wire-doc'
export { Roster, evaluateRoster, applyRosterEntry, retiresInvite, inviteRetiresAt, INVITE_WINDOW_MS, INVITE_LIFETIME_MS, type Member, type RosterEvents } from './roster'
export { StreamLedger, type Position } from './stream-ledger'
export { EpochStarts, datesEpoch } from './epoch-starts'
export { planCompaction } from './compaction'
export { type DroppedOwnStore } from './dropped-own'
export { CoverChains } from './cover-chains'
export {
  SyncEngine,
  deviceIdOf,
  type SyncEngineOptions,
  type SyncEngineEvents,
  type Rejection,
  type CompactionStep,
} from './sync-engine'
export { type ControlMessage } from './intake'
export { MovedControlSchema, parseControl, type MovedControl } from './membership'
export { type SyncStatus, type StoreKind, type CountsByCode } from './sync-status'
export { ENVELOPE_ORIGIN, transportOrigin, isSyncOrigin, type SyncOrigin, type EnvelopeOrigin, type EngineOrigin, type TransportOrigin } from './origins'
export { createSession, openSession, type CreateSessionOptions } from './session'
export { Presence, sealPresence, openPresence, withoutClaims, PresenceStateSchema, type PresenceState, type Peer, type PresenceEvents } from './presence'
export { MESSAGE_ACK, ACK_PARAM, ackMessage, readAck } from './relay-protocol'
export { StructIndex } from './struct-index'
