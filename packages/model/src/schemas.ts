import * as z from 'zod/mini'
import { en } from 'zod/locales'
import { KaiError } from './errors'
import { Id, Millis } from './schema-parts'

// zod's mini build (functional API: z.optional(x), x.check(...)): these
// schemas run in the browser, and the classic build's methods cost the web
// app's first load ~60 KB minified. Mini loads no locale by default, so
// messages would read only "Invalid input": the English one keeps them
// what they were (the classic build, which the daemon uses, loads the same).
z.config(en())

// The seed's data shapes. Everything that enters from outside (REST bodies,
// imported records, handoff payloads) is parsed with these and those of
// exchange-schemas.ts; the TypeScript types are inferred from them so there
// is one source of truth.

/** JSON values as stored in the session doc. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json }
export const JsonSchema: z.ZodMiniType<Json> = z.lazy(() =>
  z.union([
    z.string(),
    z.number().check(z.refine(Number.isFinite, 'must be a finite number')),
    z.boolean(),
    z.null(),
    z.array(JsonSchema),
    z.record(z.string(), JsonSchema),
  ]),
)

/** The six places a session can be open in. */
export const MODES = ['popup', 'tab', 'sidepanel', 'mobile', 'desktop', 'headless'] as const
export const ModeSchema = z.enum(MODES)
export type Mode = z.infer<typeof ModeSchema>

export const MessageRoleSchema = z.enum(['user', 'assistant', 'system', 'tool'])
export type MessageRole = z.infer<typeof MessageRoleSchema>

export const MESSAGE_STATUSES = ['streaming', 'complete', 'stopped', 'interrupted', 'error'] as const
export const MessageStatusSchema = z.enum(MESSAGE_STATUSES)
export type MessageStatus = z.infer<typeof MessageStatusSchema>
/** The ways a streamed reply can end other than `complete`. */
export const REPLY_ENDINGS = ['stopped', 'interrupted', 'error'] as const
export type ReplyEnding = (typeof REPLY_ENDINGS)[number]

export const MessageSchema = z.object({
  id: Id,
  role: MessageRoleSchema,
  content: z.string(),
  timestamp: Millis,
  /** Device that appended the message. */
  author: z.optional(Id),
  mode: z.optional(ModeSchema),
  /**
   * `streaming` while a reply is still arriving token by token; then how it
   * ended: `complete`, `stopped` (someone asked; the text so far is kept),
   * `interrupted` (its writer died mid-reply) or `error` (see `error`).
   */
  status: z._default(MessageStatusSchema, 'complete'),
  /** Why a reply ended in `error` (or was stopped), shown beside it. */
  error: z.optional(z.object({ code: z.string().check(z.minLength(1), z.maxLength(60)), message: z.string().check(z.maxLength(500)) })),
  metadata: z.optional(z.record(z.string(), JsonSchema)),
})
export type Message = z.infer<typeof MessageSchema>
export type MessageInput = z.input<typeof MessageSchema>

export const AgentConfigSchema = z.catchall(
  z.object({
    model: z.string().check(z.minLength(1)),
    temperature: z.number().check(z.gte(0), z.lte(2)),
    max_tokens: z.optional(z.number().check(z.int(), z.positive())),
    system_prompt: z.optional(z.string()),
    tools: z.optional(z.array(z.string())),
  }),
  // Agents carry settings of their own; keep them rather than drop them.
  JsonSchema,
)
export type AgentConfig = z.infer<typeof AgentConfigSchema>

export const DEFAULT_CONFIG: AgentConfig = { model: 'default', temperature: 0.7 }

export const AuditEntrySchema = z.object({
  id: Id,
  timestamp: Millis,
  /** Device that did it. */
  actor: Id,
  mode: ModeSchema,
  action: z.string().check(z.minLength(1), z.maxLength(200)),
  details: z.optional(z.record(z.string(), JsonSchema)),
})
export type AuditEntry = z.infer<typeof AuditEntrySchema>

/**
 * A request about a reply that any writer may make: `stop` it, or `retry`
 * it (answer again). Its own record, authored by the requesting device, so
 * it never edits the agent's message (authorship is the signer's).
 */
export const ControlKindSchema = z.enum(['stop', 'retry'])
export type ControlKind = z.infer<typeof ControlKindSchema>
export const ControlRequestSchema = z.object({
  id: Id,
  kind: ControlKindSchema,
  /** The reply it is about. */
  message_id: Id,
  /** Device that asked. */
  device: Id,
  mode: ModeSchema,
  timestamp: Millis,
})
export type ControlRequest = z.infer<typeof ControlRequestSchema>

export const MemorySnapshotSchema = z.object({
  id: Id,
  timestamp: Millis,
  author: z.optional(Id),
  summary: z.optional(z.string()),
  data: z.record(z.string(), JsonSchema),
})
export type MemorySnapshot = z.infer<typeof MemorySnapshotSchema>

/** Device-local, live-shared state: never part of the durable CRDT history. */
export const VolatileStateSchema = z.object({
  active_tools: z._default(z.array(z.string()), []),
  /** The reply being streamed right now, if any. */
  streaming: z._default(z.nullable(z.object({ message_id: Id, buffer: z.string() })), null),
  scratchpad: z._default(z.string(), ''),
  ui_state: z._default(z.record(z.string(), JsonSchema), {}),
})
export type VolatileState = z.infer<typeof VolatileStateSchema>

export const ConflictPolicySchema = z.enum(['merge', 'timestamp', 'manual', 'user_choice'])
export type ConflictPolicy = z.infer<typeof ConflictPolicySchema>

export const TRANSFER_TYPES = ['takeover', 'mirror', 'observe'] as const
export const TransferTypeSchema = z.enum(TRANSFER_TYPES)
export type TransferType = z.infer<typeof TransferTypeSchema>

/** Parses input from outside, turning a schema failure into `invalid_input`. */
export function parseInput<S extends z.core.$ZodType>(schema: S, input: unknown, what: string): z.infer<S> {
  const result = z.safeParse(schema, input)
  if (result.success) return result.data
  const issues = result.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ')
  throw new KaiError('invalid_input', `${what}: ${issues}`)
}
