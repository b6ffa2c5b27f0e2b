import * as z from 'zod/mini'

// A handoff token's record as the relay's handoff stores file it (LevelDB
// embedded, Redis scaled out): one shape, so a record reads the same from
// either. The claim (the device that resumed, and its box) is stored beside
// it by each store in its own way.

/** How long a record outlives its token: a replay a day later still finds it burned. */
export const KEEP_AFTER_EXPIRY_MS = 24 * 3600_000

export const StoredHandoffSchema = z.object({
  tokenId: z.string(),
  sessionId: z.string(),
  // A record filed before issuers were kept fails to parse: never registered, start again.
  issuer: z.string(),
  transfer: z.enum(['takeover', 'mirror', 'observe']),
  expiresAt: z.number(),
  volatile: z.optional(z.string()),
})
