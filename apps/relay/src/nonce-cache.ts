import { toBase64Url } from '@kai-sync/crypto'

/** Remembers capability nonces until they expire, so each is used once. */
export interface NonceCache {
  /** True the first time a nonce is claimed, false on a replay. */
  claim(nonce: Uint8Array, expiresAt: number): Promise<boolean>
  close(): void
}

/**
 * One process's memory. Capabilities live at most a few minutes, so it
 * holds at most that many minutes of connections' nonces.
 */
export class MemoryNonceCache implements NonceCache {
  private readonly seen = new Map<string, number>()
  private readonly sweeper: ReturnType<typeof setInterval>

  constructor(private readonly now: () => number = Date.now) {
    this.sweeper = setInterval(() => this.sweep(), 30_000)
    this.sweeper.unref()
  }

  async claim(nonce: Uint8Array, expiresAt: number): Promise<boolean> {
    const key = toBase64Url(nonce)
    const known = this.seen.get(key)
    if (known !== undefined && known > this.now()) return false
    this.seen.set(key, expiresAt)
    return true
  }

  private sweep(): void {
    const now = this.now()
    for (const [key, expiresAt] of this.seen) if (expiresAt <= now) this.seen.delete(key)
  }

  close(): void {
    clearInterval(this.sweeper)
  }
}
