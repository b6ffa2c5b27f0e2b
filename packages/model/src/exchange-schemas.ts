import * as z from 'zod/mini'
import { Id, Millis } from './schema-parts'
import {
  AgentConfigSchema,
  AuditEntrySchema,
  ConflictPolicySchema,
  JsonSchema,
  MemorySnapshotSchema,
  MessageSchema,
  ModeSchema,
  TransferTypeSchema,
  VolatileStateSchema,
} from './schemas'

// What programs exchange about a session rather than what a replica reads
// from its doc: the session record (GET /session/:id, an imported record,
// what a handoff's target shows) and a handoff's request. Their own entry,
// @kai-sync/model/exchange-schemas: in schemas.ts, which every page loads
// first, they would be built at load (a schema is built when its module
// runs, read or not) although a page needs them only for a handoff. The
// bodies only the daemon's REST API reads are in rest-schemas.ts. Their
// types are in the package's index.

/** One of the concurrent values of a field in conflict. */
export const ConflictValueSchema = z.object({
  value: JsonSchema,
  device_id: Id,
  mode: z.optional(ModeSchema),
  /** Hybrid logical clock of the write, as a sortable string. */
  hlc: z.string(),
  timestamp: Millis,
})
export type ConflictValue = z.infer<typeof ConflictValueSchema>

export const ConflictInfoSchema = z.object({
  /** `config.<key>` or `message.<id>.content`. */
  field: z.string(),
  policy: ConflictPolicySchema,
  /** Every concurrent value, at least two, ordered by hlc. */
  values: z.array(ConflictValueSchema).check(z.minLength(2)),
  /** The value shown until the conflict is resolved. */
  visible: JsonSchema,
})
export type ConflictInfo = z.infer<typeof ConflictInfoSchema>

export const SessionStateSchema = z.object({
  session_id: Id,
  agent_id: Id,
  user_id: Id,
  created_at: Millis,
  messages: z.array(MessageSchema),
  config: AgentConfigSchema,
  audit: z.array(AuditEntrySchema),
  memory: z.array(MemorySnapshotSchema),
})
export type SessionState = z.infer<typeof SessionStateSchema>

export const SessionRecordSchema = z.extend(SessionStateSchema, {
  /** Latest timestamp of anything in the session. */
  updated_at: Millis,
  conflicts: z.array(ConflictInfoSchema),
  volatile: z.optional(VolatileStateSchema),
})
export type SessionRecord = z.infer<typeof SessionRecordSchema>
export type SessionRecordInput = z.input<typeof SessionRecordSchema>

export const HandoffIntentSchema = z.object({
  session_id: Id,
  source_mode: ModeSchema,
  target_mode: ModeSchema,
  transfer_type: TransferTypeSchema,
  /** Volatile state to carry to the target; the source's own when omitted. */
  volatile: z.optional(VolatileStateSchema),
})
export type HandoffIntent = z.infer<typeof HandoffIntentSchema>
