/** How relay processes that share rooms tell each other about updates (Redis in production). */
export interface Fanout {
  /** Delivers other processes' messages for the room until unsubscribed. */
  subscribe(room: string, handlers: FanoutHandlers): Promise<void>
  unsubscribe(room: string): Promise<void>
  publishUpdate(room: string, update: Uint8Array): void
  publishAwareness(room: string, update: Uint8Array): void
  close(): Promise<void>
}

export interface FanoutHandlers {
  update(update: Uint8Array): void
  awareness(update: Uint8Array): void
  /**
   * Updates for the room may have been published and never delivered (a
   * connection to Redis dropped): the room reloads what is stored, since
   * every update is stored before it is published.
   */
  resync(): void
}
