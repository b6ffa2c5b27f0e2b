import type { Room, RoomHost } from './room'
import type { Logger } from './log'

/** What federation needs from the relay it runs in. */
export interface FederationHost {
  room(name: string): Promise<Room>
  host: RoomHost
  log: Logger
}

/** Mirrors loaded rooms with peer relays (see peer-link.ts). */
export interface Federation {
  readonly publicKeyText: string
  attach(host: FederationHost): void
  isPeerKey(key: Uint8Array): Promise<boolean>
  /** Opens links to every peer for a room that now has clients... */
  clientsArrived(room: Room): void
  /** ...and closes them when its last client leaves. */
  clientsLeft(room: Room): void
  close(): Promise<void>
}
