import type { SignatureVerifier } from '@kai-sync/crypto'
import type { EpochStarts, WireDoc } from '@kai-sync/engine'
import type { LogCopies } from './log-copies'
import type { RoomRoster } from './room-roster'
import type { StreamIndex } from './stream-index'

/** What the guards judge an update against: the room as it stands, and who sent it. */
export interface GuardContext {
  room: string
  /** Most structs one update may carry (each costs an object and a check). */
  maxStructs: number
  wire: WireDoc
  roster: RoomRoster
  /** Where each stream stands in the room: new envelopes must continue their own device's stream. */
  streams: StreamIndex
  /** When each key epoch started (the owner's grants): an envelope sealed under an older epoch after is stale. */
  epochs: EpochStarts
  /** The envelopes the log holds live: a copy of one is dropped by the room, not judged as a new position. */
  copies: Pick<LogCopies, 'holds'>
  verifier: SignatureVerifier
  /** The device behind the connection, or null for a federated peer relay. */
  device: Uint8Array | null
}
