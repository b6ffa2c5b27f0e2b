import * as z from 'zod/mini'

// The bodies of the relay's handoff endpoints, checked with these schemas
// the same on the client (relay-client.ts) and on the relay (registry.ts).

const B64 = z.string().check(z.regex(/^[A-Za-z0-9_-]+$/, 'base64url'), z.maxLength(200_000))
/** The largest sealed volatile state a source may park with a token, by default. */
export const MAX_VOLATILE_BYTES = 256 * 1024

export const RegisterHandoffBodySchema = z.object({
  token: B64,
  /**
   * The source's volatile state, sealed under the session key: ciphertext.
   * Capped at the registry's volatile limit as base64url (not the 200,000
   * characters of other fields, which would refuse states over ~146 KiB).
   */
  volatile: z.optional(z.string().check(z.regex(/^[A-Za-z0-9_-]+$/, 'base64url'), z.maxLength(Math.ceil((MAX_VOLATILE_BYTES * 4) / 3)))),
})
export type RegisterHandoffBody = z.infer<typeof RegisterHandoffBodySchema>

export const ResumeBodySchema = z.object({
  token: B64,
  /** The target device's Ed25519 and X25519 public keys. */
  device: B64,
  box: B64,
  /** The invite key's signature over the token id, device and box (signHandoffClaim): proof of the link's secret. */
  claim: B64,
})
export type ResumeBody = z.infer<typeof ResumeBodySchema>

export const ResumeResponseSchema = z.object({
  transfer: z.enum(['takeover', 'mirror', 'observe']),
  role: z.enum(['writer', 'reader']),
  volatile: z.optional(B64),
})
export type ResumeResponse = z.infer<typeof ResumeResponseSchema>
