import type { SignatureVerifier } from '@kai-sync/crypto'
import type { UpdateStore } from '@kai-sync/storage'
import type { Fanout } from './fanout'
import type { Metrics } from './metrics'
import type { Logger } from './log'
import type { RelayLimits } from './limits'

/**
 * What every room of a relay shares, as the room's parts use it. (RoomHost
 * adds the callbacks about a room's life; declared apart so those parts
 * need not import room.ts, which imports them.)
 */
export interface RoomServices {
  store: UpdateStore
  verifier: SignatureVerifier
  metrics: Metrics
  log: Logger
  limits: RelayLimits
  fanout?: Fanout | undefined
}
