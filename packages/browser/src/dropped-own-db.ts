import * as idb from 'lib0/indexeddb'
import { KaiError } from '@kai-sync/model'
import type { DroppedOwnStore } from '@kai-sync/engine'
import { committed, request } from './device-db'

/** The database of this origin's DroppedOwnDb (ciphertext only), apart from the device's: that one's stores are fixed when it is created. */
export const DROPPED_DB_NAME = 'kai-sync/dropped'
const STORE = 'envelopes'

/**
 * The browser's DroppedOwnStore: the envelopes this device sealed that a
 * session's log dropped before it re-sealed them, under [sessionId, key],
 * in a database of their own. Every context of the origin shares it, so
 * each writes and deletes one entry at a time, never the whole set.
 */
export class DroppedOwnDb implements DroppedOwnStore {
  private db: Promise<IDBDatabase> | null = null

  constructor(private readonly name: string = DROPPED_DB_NAME) {}

  async load(sessionId: string): Promise<Uint8Array[]> {
    const tx = (await this.open()).transaction(STORE, 'readonly')
    return (await request(tx.objectStore(STORE).getAll(range(sessionId)))) as Uint8Array[]
  }

  async keep(sessionId: string, key: string, envelope: Uint8Array): Promise<void> {
    const tx = (await this.open()).transaction(STORE, 'readwrite')
    tx.objectStore(STORE).put(envelope, [sessionId, key])
    await committed(tx)
  }

  async forget(sessionId: string, key: string): Promise<void> {
    const tx = (await this.open()).transaction(STORE, 'readwrite')
    tx.objectStore(STORE).delete([sessionId, key])
    await committed(tx)
  }

  /** Deletes what is kept for the session (it leaves this device). */
  async remove(sessionId: string): Promise<void> {
    const tx = (await this.open()).transaction(STORE, 'readwrite')
    tx.objectStore(STORE).delete(range(sessionId))
    await committed(tx)
  }

  private open(): Promise<IDBDatabase> {
    this.db ??= idb.openDB(this.name, (db) => idb.createStores(db, [[STORE]])).catch((cause: unknown) => {
      this.db = null
      throw new KaiError('unavailable', `IndexedDB refused to open ${this.name}`, { cause })
    })
    return this.db
  }
}

function range(sessionId: string): IDBKeyRange {
  return IDBKeyRange.bound([sessionId, ''], [sessionId, '\uffff'])
}
