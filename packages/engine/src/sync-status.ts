import * as Y from 'yjs'
import type { Role } from '@kai-sync/crypto'
import type { ErrorCode } from '@kai-sync/model'

export type StoreKind = 'local' | 'remote'

/** How many, by the stable code that says why. */
export type CountsByCode = Partial<Record<ErrorCode, number>>

/**
 * What an app shows: `pending` while local changes are not yet sealed or
 * not yet stored; `saved` once every local store holds them; `synced` once
 * a remote (the relay) holds them too and this replica holds nothing back.
 * An envelope held for a gap, a key or a roster entry means this replica
 * does not show all there is: that is never `synced`.
 */
export interface SyncStatus {
  state: 'pending' | 'saved' | 'synced'
  /** Local changes not yet sealed into an envelope. */
  unsealed: number
  /** Remote envelopes held for a missing predecessor, key or roster entry. */
  held: number
  heldBy: CountsByCode
  /** Envelopes, roster entries and key grants refused for good since this replica opened. */
  refused: number
  refusedBy: CountsByCode
  role: Role | undefined
}

export function total(counts: CountsByCode): number {
  let n = 0
  for (const c of Object.values(counts)) n += c ?? 0
  return n
}

interface Store {
  kind: StoreKind
  /** The wire-doc clock of our own client this store has acknowledged. */
  acknowledged: number
}

export class SyncStatusTracker {
  private readonly stores = new Map<string, Store>()
  /** Our wire client's clock after our last append. */
  private sealedClock = 0

  constructor(private readonly changed: () => void) {}

  sealed(wire: Y.Doc): void {
    this.sealedClock = Y.getState(wire.store, wire.clientID)
  }

  register(kind: StoreKind, name: string, ownClient: () => number) {
    const store: Store = { kind, acknowledged: 0 }
    this.stores.set(name, store)
    return {
      acknowledge: (stateVector: Map<number, number>) => {
        store.acknowledged = stateVector.get(ownClient()) ?? 0
        this.changed()
      },
      remove: () => {
        this.stores.delete(name)
        this.changed()
      },
    }
  }

  /** True if every local store holds our wire client's appends up to `clock` (none registered: memory is all there is). */
  storedLocally(clock: number): boolean {
    return [...this.stores.values()].every((s) => s.kind !== 'local' || s.acknowledged >= clock)
  }

  status(unsealed: number, heldBy: CountsByCode, refusedBy: CountsByCode, role: Role | undefined): SyncStatus {
    const held = total(heldBy)
    const holds = (kind: StoreKind, none: boolean) => {
      const stores = [...this.stores.values()].filter((s) => s.kind === kind)
      if (stores.length === 0) return none
      return kind === 'local'
        ? stores.every((s) => s.acknowledged >= this.sealedClock)
        : stores.some((s) => s.acknowledged >= this.sealedClock)
    }
    let state: SyncStatus['state'] = 'pending'
    // With no local store registered, the in-memory wire doc is all the
    // storage there is: sealing counts as saved.
    if (unsealed === 0 && holds('local', true)) state = held === 0 && holds('remote', false) ? 'synced' : 'saved'
    return { state, unsealed, held, heldBy, refused: total(refusedBy), refusedBy, role }
  }
}
