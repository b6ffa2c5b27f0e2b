// Typed transaction origins, so no observer mistakes an update it caused
// for one that came from elsewhere, and nothing is echoed back.

/** The engine applying decrypted envelopes to the session doc. */
export interface EnvelopeOrigin {
  readonly source: 'envelope'
}

/** The engine appending its own sealed envelopes to the wire doc. */
export interface EngineOrigin {
  readonly source: 'engine'
  readonly engine: object
}

/** A transport (IndexedDB, BroadcastChannel, relay, simulated link) applying wire updates. */
export interface TransportOrigin {
  readonly source: 'transport'
  readonly transport: string
}

export type SyncOrigin = EnvelopeOrigin | EngineOrigin | TransportOrigin

export const ENVELOPE_ORIGIN: EnvelopeOrigin = Object.freeze({ source: 'envelope' })

export function transportOrigin(transport: string): TransportOrigin {
  return Object.freeze({ source: 'transport', transport })
}

export function isSyncOrigin(origin: unknown): origin is SyncOrigin {
  return typeof origin === 'object' && origin !== null && 'source' in origin
}
