/** What one connection may do; every limit is a CLI flag and an environment variable. */
export interface RelayLimits {
  /** Largest frame accepted (a snapshot of a long session can be several MB). */
  maxMessageBytes: number
  /** Largest frame before a new room's genesis arrives (a genesis is a few hundred bytes). */
  maxMessageBytesBeforeGenesis: number
  /** Most Yjs items (structs) one update may carry. */
  maxItemsPerUpdate: number
  /** Sustained messages per second per connection... */
  messagesPerSecond: number
  /** ...and the burst allowed above it. */
  messageBurst: number
  /** Sustained bytes per second per connection (what it sends a room stores and relays)... */
  bytesPerSecond: number
  /** ...and the burst allowed above it; never less than one frame of `maxMessageBytes`. */
  byteBurst: number
  /** Open room connections per client address (y-websocket opens one connection per room). */
  maxRoomsPerClient: number
  /**
   * Time to send the WebSocket upgrade request (a socket that has not sent
   * it whole by then is closed), and to send a room's genesis, for a
   * connection that opens a room that does not exist yet.
   */
  preAuthTimeoutMs: number
  /**
   * How long a device that is not in a room's roster may wait for the entry
   * enrolling it (it may still be on its way through another relay) before
   * it is refused with 4403.
   */
  membershipGraceMs: number
  /**
   * How long a device that resumed a handoff (and so syncs before it is in
   * the roster) has to send the roster entry enrolling it before 4403.
   */
  enrollmentDeadlineMs: number
  /** Updates a connection may have waiting for data the relay lacks. */
  maxDeferredUpdates: number
  /** Bytes queued to a slow client before it is dropped. */
  maxBufferedBytes: number
  /** A room with no connection is unloaded after this long. */
  idleRoomMs: number
  /** Longest capability lifetime accepted. */
  maxCapabilityLifetimeMs: number
  /** A room's stored records (updates stored together are one) are merged into one past this many, so loads stay fast. */
  compactStoredAfter: number
  /** POST /session/:id/handoff and /resume requests per client address per minute. */
  handoffPerMinute: number
}

export const DEFAULT_LIMITS: RelayLimits = {
  maxMessageBytes: 16 * 1024 * 1024,
  maxMessageBytesBeforeGenesis: 64 * 1024,
  maxItemsPerUpdate: 50_000,
  messagesPerSecond: 500,
  messageBurst: 2000,
  // An honest client sends its whole state once on connect (at most one
  // frame), then small envelopes and an occasional snapshot.
  bytesPerSecond: 1024 * 1024,
  byteBurst: 32 * 1024 * 1024,
  maxRoomsPerClient: 4096,
  preAuthTimeoutMs: 10_000,
  membershipGraceMs: 3000,
  enrollmentDeadlineMs: 60_000,
  maxDeferredUpdates: 64,
  maxBufferedBytes: 64 * 1024 * 1024,
  idleRoomMs: 30_000,
  maxCapabilityLifetimeMs: 10 * 60_000,
  compactStoredAfter: 1000,
  handoffPerMinute: 60,
}

/** A token bucket: `take(n)` is false once the connection is over its rate (in messages, or in bytes). */
export class RateLimiter {
  private tokens: number
  private last: number

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst
    this.last = now()
  }

  take(n = 1): boolean {
    const t = this.now()
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSecond)
    this.last = t
    if (this.tokens < n) return false
    this.tokens -= n
    return true
  }
}
