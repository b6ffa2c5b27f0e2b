import * as z from 'zod/mini'
import { Id, Millis } from './schema-parts'
import { AgentConfigSchema, AuditEntrySchema, MemorySnapshotSchema, MessageSchema, ModeSchema, VolatileStateSchema } from './schemas'

// Bodies of the seed's REST API that only the daemon reads or answers (no
// page does): the entry @kai-sync/model/rest-schemas, so that a bundle for
// the browser never builds them (nor carries zod's URL and partial
// schemas, which only they use). Their types are in the package's index.

export const SessionIdentitySchema = z.object({
  session_id: Id,
  agent_id: Id,
  user_id: Id,
  device_id: Id,
  mode: ModeSchema,
})
export type SessionIdentity = z.infer<typeof SessionIdentitySchema>

/** A batch of changes sent by a program (the seed's `POST /session/:id/sync`). */
export const SessionDeltaSchema = z.object({
  session_id: Id,
  device_id: Id,
  mode: ModeSchema,
  timestamp: Millis,
  messages: z.optional(z.array(MessageSchema)),
  config: z.optional(z.partial(AgentConfigSchema)),
  audit: z.optional(z.array(AuditEntrySchema)),
  memory: z.optional(z.array(MemorySnapshotSchema)),
  volatile: z.optional(z.partial(VolatileStateSchema)),
})
export type SessionDelta = z.infer<typeof SessionDeltaSchema>

export const HandoffResponseSchema = z.object({
  handoff_token: z.string().check(z.minLength(1)),
  qr_code: z.object({ svg: z.string(), data_url: z.string() }),
  /** The link the QR code encodes. */
  resume_url: z.string().check(z.url()),
  expires_at: Millis,
  instructions: z.string(),
})
export type HandoffResponse = z.infer<typeof HandoffResponseSchema>
