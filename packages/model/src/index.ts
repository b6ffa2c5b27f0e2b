export { KaiError, ERROR_CODES, HTTP_STATUS, isKaiError, toKaiError, type ErrorCode } from './errors'
export {
  JsonSchema,
  MODES,
  ModeSchema,
  MessageRoleSchema,
  MessageStatusSchema,
  MessageSchema,
  AgentConfigSchema,
  AuditEntrySchema,
  ControlRequestSchema,
  MemorySnapshotSchema,
  VolatileStateSchema,
  ConflictPolicySchema,
  TRANSFER_TYPES,
  parseInput,
  type Json,
  type Mode,
  type MessageRole,
  type MessageStatus,
  type ReplyEnding,
  type Message,
  type MessageInput,
  type AgentConfig,
  type AuditEntry,
  type ControlKind,
  type ControlRequest,
  type MemorySnapshot,
  type VolatileState,
  type ConflictPolicy,
  type TransferType,
} from './schemas'
// The schemas of what programs exchange (ConflictValueSchema,
// ConflictInfoSchema, SessionStateSchema, SessionRecordSchema,
// HandoffIntentSchema) are the entry @kai-sync/model/exchange-schemas, and
// the daemon's REST bodies (SessionIdentitySchema, SessionDeltaSchema,
// HandoffResponseSchema) the entry @kai-sync/model/rest-schemas: see there
// why. Their types are here.
export type { ConflictValue, ConflictInfo, SessionState, SessionRecord, SessionRecordInput, HandoffIntent } from './exchange-schemas'
export type { SessionIdentity, SessionDelta, HandoffResponse } from './rest-schemas'
export { HybridClock, encodeHlc, decodeHlc, compareHlc, type HlcTimestamp } from './hlc'
export { OrderedIndex } from './ordered-index'
export { ConfigRegister, isValidConfigValue, type ConfigWrite } from './config-register'
export {
  SessionDoc,
  LOCAL_ORIGIN,
  type SessionMeta,
  type SessionChange,
  type SessionDocEvents,
  type SessionDocOptions,
  type NewMessage,
} from './session-doc'
export { MessageEditRegister, type MessageEdit } from './edit-register'
export { canonicalJson, mergeConcurrent, type MergeCandidate } from './json-merge'
export {
  DEFAULT_POLICY,
  configField,
  messageField,
  parseField,
  policyTargetOf,
  resolveHeads,
  type PolicyField,
  type PolicyTarget,
  type PolicyWrite,
  type Resolution,
} from './conflict-policy'
export { SessionPolicies, type PolicySession, type SessionPoliciesEvents, type SessionPoliciesOptions, type UserChoice } from './session-policies'
// The session record (toRecord, toState, importRecord) is its own entry,
// @kai-sync/model/record: a file this index re-exports goes wherever the
// index goes (a bundler splitting code keeps it with the barrel), and a
// page needs records only for a handoff.
export { agentConfig, latestWriteWins, type ConfigResolver, type ConfigView } from './config-view'
