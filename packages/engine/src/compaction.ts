import { decodeEnvelope, type Envelope } from '@kai-sync/crypto'
import { CoverChains } from './cover-chains'

/**
 * Which log entries `snapshot` replaces: updates and controls on the chain
 * ending at the cover of their stream, and older snapshots whose covers lie
 * on those chains. Anything else (an offline device's envelopes it never
 * saw, a concurrent snapshot that knows more, envelopes a cover claims but
 * whose chain does not lead there) survives. The relay applies the same
 * rule before it accepts a deletion.
 */
export function planCompaction(sessionId: string, snapshot: Envelope, log: Uint8Array[]): (envelope: Uint8Array) => boolean {
  const decoded = new Map<Uint8Array, Envelope>()
  for (const bytes of log) {
    try {
      const env = decodeEnvelope(bytes)
      if (env.header.sessionId === sessionId) decoded.set(bytes, env)
    } catch {
      // not an envelope: never deleted
    }
  }
  const chains = new CoverChains(decoded.values())
  return (bytes) => {
    const env = decoded.get(bytes)
    return env !== undefined && chains.holds([snapshot], env)
  }
}
