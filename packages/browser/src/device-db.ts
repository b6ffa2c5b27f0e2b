import * as idb from 'lib0/indexeddb'
import { KaiError } from '@kai-sync/model'

/**
 * The per-origin database of this device's own things: its signing key,
 * session keys, the list of sessions and volatile state at rest. The wire
 * docs live in databases of their own (one per session, y-indexeddb's).
 */
export const DEVICE_DB_NAME = 'kai-sync'

export const STORES = {
  /** `self` → this device's Ed25519 CryptoKeyPair (private half non-extractable). */
  device: 'device',
  /** `wrapping` → the AES key that wraps handoff copies; `[sessionId, epoch]` → a StoredSessionKey. */
  keys: 'keys',
  /** sessionId → a CatalogEntry. */
  catalog: 'catalog',
  /** `[sessionId, field]` → a sealed presence state holding that field. */
  volatile: 'volatile',
} as const

export type DeviceDb = IDBDatabase

export async function openDeviceDb(name: string = DEVICE_DB_NAME): Promise<DeviceDb> {
  if (typeof indexedDB === 'undefined') throw new KaiError('unavailable', 'this browser has no IndexedDB; sessions cannot be stored here')
  try {
    return await idb.openDB(name, (db) => idb.createStores(db, Object.values(STORES).map((s) => [s])))
  } catch (cause) {
    throw new KaiError('unavailable', `IndexedDB refused to open ${name} (private mode or storage blocked?)`, { cause })
  }
}

/** Resolves when a transaction commits, rejects when it aborts. */
export function committed(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    // A failed request's error reaches the transaction before tx.error is set.
    tx.onerror = (e) => reject((e.target as IDBRequest | null)?.error ?? tx.error)
    tx.onabort = () => reject(tx.error ?? new DOMException('IndexedDB transaction aborted', 'AbortError'))
  })
}

export function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })
}
