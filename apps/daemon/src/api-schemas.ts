import { z } from 'zod'
// The shared schemas (@kai-sync/model) are zod mini ones (they run in the
// browser too): they have no methods such as .extend, so they are derived
// from with mini's functions; the two builds compose.
import * as zm from 'zod/mini'
import {
  AgentConfigSchema,
  ConflictPolicySchema,
  JsonSchema,
  MessageRoleSchema,
  MessageSchema,
  ModeSchema,
} from '@kai-sync/model'
import { ConflictInfoSchema, SessionRecordSchema } from '@kai-sync/model/exchange-schemas'
import { ClientKeySchema } from './client-keys'

// The bodies of the daemon's API beyond the seed's shapes (which come from
// @kai-sync/model). Requests are parsed with these, responses are checked
// with them, and the OpenAPI document is generated from them.

const Id = z.string().min(1).max(200)
const B64Key = z.string().regex(/^[A-Za-z0-9_-]{43}$/, '32 bytes as unpadded base64url (43 characters)')

export const ErrorBodySchema = z.object({
  error: z.object({
    /** Stable: programs branch on it. */
    code: z.string(),
    /** For people: what was wrong and what to do. */
    message: z.string(),
  }),
})

export const CreateSessionBodySchema = z.object({
  agent_id: Id,
  user_id: Id,
  config: z.optional(zm.partial(AgentConfigSchema)),
})

/** Counts by stable error code (gap, wrong_epoch, unknown_signer, bad_signature, …). */
const CountsByCodeSchema = z.record(z.string(), z.number().int())

/**
 * Why a session is not `synced`: envelopes held back (waiting for an
 * earlier one, a key or a roster entry) and envelopes refused for good since
 * the daemon opened the session, each by code.
 */
export const SyncDetailSchema = z.object({
  held: z.number().int(),
  held_by: CountsByCodeSchema,
  refused: z.number().int(),
  refused_by: CountsByCodeSchema,
})

export const SessionSummarySchema = z.object({
  session_id: z.string(),
  /** False while this device waits for the session's key (just enrolled). */
  ready: z.boolean(),
  agent_id: z.string().optional(),
  user_id: z.string().optional(),
  created_at: z.number().optional(),
  updated_at: z.number().optional(),
  messages: z.number().int().optional(),
  /** This device's role in the session's roster. */
  role: z.string().optional(),
  /** pending, saved (on this disk), synced (the relay holds it too, and nothing is held back here). */
  sync: z.enum(['pending', 'saved', 'synced']),
  relay: z.enum(['off', 'connecting', 'connected', 'disconnected', 'refused']),
  /** Where the session went, if another device took it over from this one. */
  moved_to: z.object({ device: z.string(), label: z.string() }).optional(),
}).extend(SyncDetailSchema.shape)

/** GET /session/:id: the seed's record, with this device's sync status beside it. */
export const HostedRecordSchema = zm.extend(SessionRecordSchema, {
  sync: SyncDetailSchema.extend({ state: z.enum(['pending', 'saved', 'synced']), relay: z.string() }),
})

export const SessionListSchema = z.object({ sessions: z.array(SessionSummarySchema) })

export const SyncBodySchema = z.object({
  /** A SessionDelta, exactly as signed. */
  delta: z.record(z.string(), z.unknown()),
  /** Ed25519 over the canonical delta, unpadded base64url; see the description of this operation. */
  signature: z.string(),
})
export const SyncResponseSchema = z.object({
  success: z.literal(true),
  conflicts: z.array(ConflictInfoSchema).optional(),
})

export const AppendMessageBodySchema = z.object({
  /** Defaults to a random UUID. Appending an id that exists changes nothing. */
  id: Id.optional(),
  role: MessageRoleSchema,
  content: z.string().max(1_000_000).default(''),
  /** `streaming` starts a message to stream into with .../stream. */
  status: z.enum(['streaming', 'complete']).default('complete'),
  timestamp: z.number().int().nonnegative().optional(),
  metadata: z.record(z.string(), JsonSchema).optional(),
})

export const StreamChunkBodySchema = z
  .object({
    /** Text appended at the end of the message. */
    text: z.string().max(1_000_000).default(''),
    /** Marks the message complete after appending `text`. */
    done: z.boolean().default(false),
  })
  .refine((b) => b.text.length > 0 || b.done, 'send text, done: true, or both')

/** One line of an NDJSON stream body: as a chunk, and nothing else in it. */
export const StreamLineSchema = z
  .strictObject({
    text: z.string().max(1_000_000).default(''),
    done: z.boolean().default(false),
  })
  .refine((b) => b.text.length > 0 || b.done, 'send text, done: true, or both')

export const MessagePageSchema = z.object({
  messages: z.array(MessageSchema),
  /** The cursor to pass as `after` for the next page (the request's own, or null, when the page is empty). */
  next: z.string().nullable(),
  more: z.boolean(),
})

export const ConfigPatchBodySchema = zm.partial(AgentConfigSchema).check(zm.refine((c) => Object.keys(c).length > 0, 'name at least one field'))

export const ConfigViewSchema = z.object({
  config: AgentConfigSchema,
  conflicts: z.array(ConflictInfoSchema),
})

export const ConflictListSchema = z.object({ conflicts: z.array(ConflictInfoSchema) })

export const ResolveConflictBodySchema = z.object({
  /** As in ConflictInfo: `config.<key>` or `message.<id>.content`. */
  field: z.string().regex(/^(config\.[A-Za-z0-9_.-]{1,100}|message\.[^\s]{1,200}\.content)$/, 'config.<key> or message.<id>.content'),
  /** The value to keep (one of the conflicting values or another): it supersedes every concurrent value. A message content is a string. */
  value: JsonSchema,
})

/** Where a conflict policy is set: the session default, every message's content, or one config key. */
const PolicyTargetSchema = z.string().regex(/^(default|message\.content|config\.[A-Za-z0-9_.-]{1,100})$/, 'default, message.content or config.<key>')

export const SetPolicyBodySchema = z.object({
  target: PolicyTargetSchema,
  /** merge, timestamp, manual or user_choice; null clears the setting, so the target falls back to the default. */
  policy: z.nullable(ConflictPolicySchema),
})

export const PolicyListSchema = z.object({
  /** Every target with a policy set, as stored in the session (the same on every device). */
  policies: z.record(z.string(), ConflictPolicySchema),
  /** The policy of every field with none of its own. */
  default: ConflictPolicySchema,
})

export const ResumeBodySchema = z.object({
  /** The resume link from the source device's handoff (its QR code). */
  resume_url: z.string().min(1).max(10_000),
  /** How this device shows in the session's roster. */
  label: z.string().min(1).max(100).optional(),
})

export const DeviceIdentitySchema = z.object({
  /** Ed25519 public key: this device's id in every roster. */
  device: B64Key,
  /** X25519 public key: what session keys are wrapped for. */
  box: B64Key,
  label: z.string(),
  mode: ModeSchema,
})

export const EnrollDeviceBodySchema = z.object({
  device: B64Key,
  box: B64Key,
  role: z.enum(['writer', 'reader']).default('writer'),
  label: z.string().min(1).max(100),
})

export const MemberSchema = z.object({
  /** Ed25519 public key, base64url. */
  device: z.string(),
  /** owner, writer, reader, or removed. */
  role: z.string(),
  label: z.string(),
  /** True for the daemon answering. */
  this_device: z.boolean(),
  /** The mode of the device's newest write in the session (message or audit entry); absent if it wrote none. */
  mode: z.optional(ModeSchema),
  /** When that write was made (ms since the epoch): what this daemon knows of when the device was last active. */
  last_seen: z.number().int().optional(),
  /** For a device enrolled with a handoff link: who made the link, and the transfer. */
  via: z.object({ invite_issuer: z.string(), transfer: z.string() }).optional(),
})
export const PendingInviteSchema = z.object({
  /** The invite's one-time public key, base64url: what DELETE /session/{id}/invites/{invite} takes. */
  invite: z.string(),
  transfer: z.enum(['observe', 'mirror', 'takeover']),
  label: z.string(),
  /** The device that made the handoff link. */
  issuer: z.string(),
  issued_at: z.number().int(),
  /** When its handoff link expires; its issuer then retires it. */
  expires_at: z.number().int(),
})
export const MemberListSchema = z.object({
  devices: z.array(MemberSchema),
  /** Handoff invites not used, cancelled or retired yet. */
  invites: z.array(PendingInviteSchema),
})

export const JoinBodySchema = z.object({
  /** How long to wait for the relay to deliver the session and its key (ms). */
  wait_ms: z.number().int().min(0).max(120_000).default(20_000),
})

export const RegisterClientBodySchema = ClientKeySchema.pick({ public_key: true, label: true })
export const ClientListSchema = z.object({ clients: z.array(ClientKeySchema) })

export const HealthSchema = z.object({
  ok: z.literal(true),
  device: z.string(),
  sessions: z.number().int(),
  relay: z.string().nullable(),
  /** Sessions not `synced`, and the envelopes held and refused across all sessions. */
  unsynced: z.number().int(),
  held: z.number().int(),
  refused: z.number().int(),
})

export const EmptySchema = z.object({})
