import * as z from 'zod/mini'

// Building blocks of the shared schemas (schemas.ts, exchange-schemas.ts).

export const Id = z.string().check(z.minLength(1), z.maxLength(200))
/** Milliseconds since the Unix epoch. */
export const Millis = z.number().check(z.int(), z.nonnegative())
