import { BoxKey, WebCryptoDeviceKey, hasWebCryptoEd25519 } from '@kai-sync/crypto'
import { KaiError } from '@kai-sync/model'
import { STORES, committed, request, type DeviceDb } from './device-db'

const SELF = 'self'
const BOX = 'box'

/**
 * This device's signing key: generated once per origin as a non-extractable
 * WebCrypto Ed25519 pair and kept in IndexedDB as the CryptoKeyPair itself
 * (structured clone keeps CryptoKeys; script can sign with it, never read
 * it). Contexts opening at once race to `add`; the loser reads the winner's.
 */
export async function loadDeviceKey(db: DeviceDb): Promise<WebCryptoDeviceKey> {
  const existing = await readPair(db)
  if (existing) return WebCryptoDeviceKey.fromKeyPair(existing)
  if (!(await hasWebCryptoEd25519())) {
    throw new KaiError('unavailable', 'this browser has no WebCrypto Ed25519; update it to use kai-sync')
  }
  const fresh = await WebCryptoDeviceKey.generate()
  try {
    const tx = db.transaction(STORES.device, 'readwrite')
    tx.objectStore(STORES.device).add(fresh.keyPair, SELF)
    await committed(tx)
    return fresh
  } catch (e) {
    if ((e as DOMException)?.name !== 'ConstraintError') throw new KaiError('unavailable', 'could not store the device key', { cause: e })
    const winner = await readPair(db)
    if (!winner) throw new KaiError('internal', 'the device key vanished while it was being created')
    return WebCryptoDeviceKey.fromKeyPair(winner)
  }
}

async function readPair(db: DeviceDb): Promise<CryptoKeyPair | undefined> {
  const tx = db.transaction(STORES.device, 'readonly')
  return (await request(tx.objectStore(STORES.device).get(SELF))) as CryptoKeyPair | undefined
}

/**
 * This device's X25519 key, for key grants and handoffs addressed to it:
 * created on first use, non-extractable, kept as a CryptoKeyPair like the
 * signing key.
 */
export async function loadBoxKey(db: DeviceDb): Promise<BoxKey> {
  const read = async () => (await request(db.transaction(STORES.device, 'readonly').objectStore(STORES.device).get(BOX))) as CryptoKeyPair | undefined
  const existing = await read()
  if (existing) return BoxKey.fromKeyPair(existing)
  const fresh = await BoxKey.generate({ extractable: false })
  try {
    const tx = db.transaction(STORES.device, 'readwrite')
    tx.objectStore(STORES.device).add(fresh.keyPair, BOX)
    await committed(tx)
    return fresh
  } catch (e) {
    const winner = await read()
    if (!winner) throw new KaiError('unavailable', 'could not store the device\'s box key', { cause: e })
    return BoxKey.fromKeyPair(winner)
  }
}
