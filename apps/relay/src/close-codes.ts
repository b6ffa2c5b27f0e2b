// The close codes a relay ends a connection with, in one place. They sit in
// the 4400-4499 range, which the stock y-websocket provider (v3) treats as
// final: it does not reconnect, since retrying cannot fix the cause.

export const CloseCode = {
  /** The frame does not decode, or carries content the wire doc may not hold. */
  BadRequest: 4400,
  /** No capability, or one that is forged, expired or already used. */
  Unauthenticated: 4401,
  /** Authenticated, but the roster does not allow what was sent or asked. */
  Forbidden: 4403,
  /** A frame over the size limit. */
  TooLarge: 4413,
  /** Over the message-rate or connection limit. */
  TooMany: 4429,
  /** The relay is shutting down; reconnecting later will work (a standard code). */
  GoingAway: 1001,
  /**
   * The relay cannot reach what it needs to admit or load (Redis, its
   * storage) right now; reconnecting later will work (the standard "try
   * again later", which the stock provider reconnects after).
   */
  TryAgainLater: 1013,
} as const

export type CloseCodeName = keyof typeof CloseCode
export type RejectCode = (typeof CloseCode)[Exclude<CloseCodeName, 'GoingAway'>]

/** A refusal: the code the sender is closed with and a reason it can read (no secrets). */
export class Refusal extends Error {
  constructor(
    readonly code: RejectCode,
    readonly reason: string,
  ) {
    super(reason)
  }
}
