import { IV_BYTES, SessionKey, SessionKeyring, randomBytes, utf8 } from '@kai-sync/crypto'
import { KaiError } from '@kai-sync/model'
import { STORES, committed, request, type DeviceDb } from './device-db'

/**
 * How a session key is kept at rest:
 * - `key`: a non-extractable AES-GCM CryptoKey, the one every context seals
 *   and opens with. Script can use it, never read it.
 * - `wrapped`: the same key, encrypted under this origin's wrapping key
 *   (itself non-extractable, usable only to wrap and unwrap), bound to the
 *   session and epoch as associated data. The handoff needs raw key bytes
 *   to give the key to another device, and WebCrypto cannot export a
 *   non-extractable key; this is the one deliberate path to them, taken
 *   only by `exportForHandoff`. No extractable key is ever stored.
 * Both protect against script reading the key out of storage, not against
 * someone who reads the profile directory: Chromium stores CryptoKey
 * material with the profile, as it does cookies.
 */
export interface StoredSessionKey {
  sessionId: string
  epoch: number
  key: CryptoKey
  wrapped: { iv: Uint8Array; bytes: Uint8Array }
}

const WRAPPING = 'wrapping'
const AES_GCM = { name: 'AES-GCM', length: 256 } as const

function subtle(): SubtleCrypto {
  return globalThis.crypto.subtle
}

function boundTo(sessionId: string, epoch: number): Uint8Array {
  return utf8(`kai-sync/session-key/v1\0${sessionId}\0${epoch}`)
}

export class SessionKeyStore {
  private constructor(
    private readonly db: DeviceDb,
    private readonly wrappingKey: CryptoKey,
  ) {}

  /** Opens the store, creating this origin's wrapping key on first use. */
  static async open(db: DeviceDb): Promise<SessionKeyStore> {
    const existing = await get<CryptoKey>(db, WRAPPING)
    if (existing) return new SessionKeyStore(db, existing)
    const fresh = await subtle().generateKey(AES_GCM, false, ['wrapKey', 'unwrapKey'])
    try {
      const tx = db.transaction(STORES.keys, 'readwrite')
      tx.objectStore(STORES.keys).add(fresh, WRAPPING)
      await committed(tx)
      return new SessionKeyStore(db, fresh)
    } catch {
      // Another context created it first: use theirs, so both can unwrap.
      const winner = await get<CryptoKey>(db, WRAPPING)
      if (!winner) throw new KaiError('unavailable', 'could not store the key-wrapping key')
      return new SessionKeyStore(db, winner)
    }
  }

  /**
   * Keeps a session key: an extractable key in (freshly generated, or
   * received by a handoff), a non-extractable one out, for the engine.
   */
  async save(sessionId: string, key: SessionKey): Promise<SessionKey> {
    if (!key.extractable) throw new KaiError('invalid_input', 'save an extractable key: a non-extractable one could never be handed off')
    const iv = randomBytes(IV_BYTES)
    const params = { name: 'AES-GCM', iv: iv as BufferSource, additionalData: boundTo(sessionId, key.epoch) as BufferSource }
    const bytes = new Uint8Array(await subtle().wrapKey('raw', key.key, this.wrappingKey, params))
    // The non-extractable twin comes from unwrapping, so the raw key bytes
    // never pass through script memory.
    const usable = await subtle().unwrapKey('raw', bytes as BufferSource, this.wrappingKey, params, 'AES-GCM', false, ['encrypt', 'decrypt'])
    const stored: StoredSessionKey = { sessionId, epoch: key.epoch, key: usable, wrapped: { iv, bytes } }
    const tx = this.db.transaction(STORES.keys, 'readwrite')
    tx.objectStore(STORES.keys).put(stored, [sessionId, key.epoch])
    await committed(tx)
    return SessionKey.fromCryptoKey(key.epoch, usable)
  }

  /** A non-extractable copy of `key` for the engine, made by a wrap round trip so raw bytes never reach script. */
  async usableCopy(key: SessionKey): Promise<SessionKey> {
    const params = { name: 'AES-GCM', iv: randomBytes(IV_BYTES) as BufferSource }
    const bytes = await subtle().wrapKey('raw', key.key, this.wrappingKey, params)
    const usable = await subtle().unwrapKey('raw', bytes, this.wrappingKey, params, 'AES-GCM', false, ['encrypt', 'decrypt'])
    return SessionKey.fromCryptoKey(key.epoch, usable)
  }

  /** Every epoch's key of a session, non-extractable; `not_found` if this device holds none. */
  async keyring(sessionId: string): Promise<SessionKeyring> {
    const tx = this.db.transaction(STORES.keys, 'readonly')
    const range = IDBKeyRange.bound([sessionId, -Infinity], [sessionId, Infinity])
    const stored = (await request(tx.objectStore(STORES.keys).getAll(range))) as StoredSessionKey[]
    if (stored.length === 0) throw new KaiError('not_found', `this device holds no key for session ${sessionId}; open it through a handoff link`)
    return new SessionKeyring(stored.map((s) => SessionKey.fromCryptoKey(s.epoch, s.key)))
  }

  /** An extractable copy of one epoch's key, for the handoff to wrap for its target. */
  async exportForHandoff(sessionId: string, epoch: number): Promise<SessionKey> {
    const stored = await get<StoredSessionKey>(this.db, [sessionId, epoch])
    if (!stored) throw new KaiError('not_found', `this device holds no key for epoch ${epoch} of session ${sessionId}`)
    const params = { name: 'AES-GCM', iv: stored.wrapped.iv as BufferSource, additionalData: boundTo(sessionId, epoch) as BufferSource }
    try {
      const key = await subtle().unwrapKey('raw', stored.wrapped.bytes as BufferSource, this.wrappingKey, params, 'AES-GCM', true, ['encrypt', 'decrypt'])
      return SessionKey.fromCryptoKey(epoch, key)
    } catch (cause) {
      throw new KaiError('decrypt_failed', `the stored key of session ${sessionId} does not unwrap: it was changed or moved`, { cause })
    }
  }

  async remove(sessionId: string): Promise<void> {
    const tx = this.db.transaction(STORES.keys, 'readwrite')
    tx.objectStore(STORES.keys).delete(IDBKeyRange.bound([sessionId, -Infinity], [sessionId, Infinity]))
    await committed(tx)
  }
}

async function get<T>(db: DeviceDb, key: IDBValidKey): Promise<T | undefined> {
  const tx = db.transaction(STORES.keys, 'readonly')
  return (await request(tx.objectStore(STORES.keys).get(key))) as T | undefined
}
