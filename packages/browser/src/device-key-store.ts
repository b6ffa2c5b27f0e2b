import { BoxKey, WebCryptoDeviceKey, hasWebCryptoEd25519 } from '@kai-sync/crypto'
import { KaiError } from '@kai-sync/model'
import { STORES, committed, request, type DeviceDb } from './device-db'

const SELF = 'self'
const BOX = 'box'

/**
 * This device's signing key: generated once per origin as a non-extractable
 * WebCrypto Ed25519 pair and kept in IndexedDB as the CryptoKeyPair itself
 * (structured clone keeps CryptoKeys; script can sign with it, never read
 * it).
 */
export function loadDeviceKey(db: DeviceDb): Promise<WebCryptoDeviceKey> {
  return loadOrCreate(db, SELF, 'the device key', WebCryptoDeviceKey.fromKeyPair, async () => {
    if (!(await hasWebCryptoEd25519())) {
      throw new KaiError('unavailable', 'this browser has no WebCrypto Ed25519; update it to use kai-sync')
    }
    return WebCryptoDeviceKey.generate()
  })
}

/**
 * This device's X25519 key, for key grants and handoffs addressed to it:
 * created on first use, non-extractable, kept as a CryptoKeyPair like the
 * signing key.
 */
export function loadBoxKey(db: DeviceDb): Promise<BoxKey> {
  return loadOrCreate(db, BOX, 'the device\'s box key', BoxKey.fromKeyPair, () => BoxKey.generate({ extractable: false }))
}

/**
 * The key stored under `id`, or a new one stored there. Contexts opening at
 * once race to `add`; the losers read the winner's.
 */
async function loadOrCreate<K extends { keyPair: CryptoKeyPair }>(
  db: DeviceDb,
  id: string,
  what: string,
  restore: (pair: CryptoKeyPair) => Promise<K>,
  generate: () => Promise<K>,
): Promise<K> {
  const read = async () => (await request(db.transaction(STORES.device, 'readonly').objectStore(STORES.device).get(id))) as CryptoKeyPair | undefined
  const existing = await read()
  if (existing) return restore(existing)
  const fresh = await generate()
  try {
    const tx = db.transaction(STORES.device, 'readwrite')
    tx.objectStore(STORES.device).add(fresh.keyPair, id)
    await committed(tx)
    return fresh
  } catch (e) {
    if ((e as DOMException)?.name !== 'ConstraintError') throw new KaiError('unavailable', `could not store ${what}`, { cause: e })
    const winner = await read()
    if (!winner) throw new KaiError('internal', `${what} vanished while it was being created`)
    return restore(winner)
  }
}
