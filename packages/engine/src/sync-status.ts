import * as Y from 'yjs'
import type { Role } from '@kai-sync/crypto'

export type StoreKind = 'local' | 'remote'

/**
 * What an app shows: `pending` while local changes are not yet sealed or
 * not yet stored; `saved` once every local store holds them; `synced` once
 * a remote (the relay) holds them too.
 */
export interface SyncStatus {
  state: 'pending' | 'saved' | 'synced'
  /** Local changes not yet sealed into an envelope. */
  unsealed: number
  /** Remote envelopes held for a missing predecessor, key or roster entry. */
  held: number
  role: Role | undefined
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

  status(unsealed: number, held: number, role: Role | undefined): SyncStatus {
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
    if (unsealed === 0 && holds('local', true)) state = holds('remote', false) ? 'synced' : 'saved'
    return { state, unsealed, held, role }
  }
}
