import { z } from 'zod'
import { BoxKey, SessionKey, WebCryptoDeviceKey, equalBytes, fromBase64Url, toBase64Url } from '@kai-sync/crypto'
import { KaiError, parseInput } from '@kai-sync/model'
import { readPrivateFile, writePrivateFile, type DataDir } from './data-dir'

// The daemon's keys at rest, each in a JSON file of mode 0600:
//   device.json  Ed25519 signing key (PKCS#8) and its public key
//   box.json     X25519 key for receiving session keys (PKCS#8) and its public key
//   keys/<session>.json  the session's AES-256 keys, one per epoch
// A key is generated extractable only long enough to write it; once loaded
// from its file it is a non-extractable CryptoKey. Session keys stay
// extractable: a handoff or an enrolment wraps them for another device.

const B64 = z.string().regex(/^[A-Za-z0-9_-]+$/)

const KeyPairFileSchema = z.object({
  type: z.enum(['kai-sync/device-key', 'kai-sync/box-key']),
  version: z.literal(1),
  pkcs8: B64,
  public: B64,
})

const SessionKeysFileSchema = z.object({
  type: z.literal('kai-sync/session-keys'),
  version: z.literal(1),
  session_id: z.string(),
  epochs: z.array(z.object({ epoch: z.number().int().nonnegative(), key: B64 })),
})

function bytes(text: string, what: string): Uint8Array {
  const out = fromBase64Url(text)
  if (!out) throw new KaiError('malformed', `${what} is not base64url`)
  return out
}

function readJson<S extends z.ZodType>(schema: S, path: string): z.infer<S> | null {
  const text = readPrivateFile(path)
  if (text === null) return null
  try {
    return parseInput(schema, JSON.parse(text), path)
  } catch (e) {
    throw new KaiError('malformed', `${path} is not a kai-sync key file; move it away to start afresh`, { cause: e })
  }
}

/** The daemon's identity: loaded from the data directory, or generated there on first start. */
export interface DeviceKeys {
  device: WebCryptoDeviceKey
  box: BoxKey
  /** True when this start generated them. */
  created: boolean
}

export async function loadOrCreateDeviceKeys(dir: DataDir): Promise<DeviceKeys> {
  const deviceFile = readJson(KeyPairFileSchema, dir.deviceKeyFile)
  const boxFile = readJson(KeyPairFileSchema, dir.boxKeyFile)
  if (deviceFile && boxFile) {
    const device = await WebCryptoDeviceKey.fromPkcs8(bytes(deviceFile.pkcs8, dir.deviceKeyFile))
    if (!equalBytes(device.publicKey, bytes(deviceFile.public, dir.deviceKeyFile))) {
      throw new KaiError('malformed', `${dir.deviceKeyFile}: the public key does not match the private key`)
    }
    const box = await BoxKey.fromPkcs8(bytes(boxFile.pkcs8, dir.boxKeyFile), bytes(boxFile.public, dir.boxKeyFile))
    return { device, box, created: false }
  }
  if (deviceFile || boxFile) {
    throw new KaiError('malformed', `one of ${dir.deviceKeyFile} and ${dir.boxKeyFile} is missing; restore it, or move both away to become a new device`)
  }
  const device = await WebCryptoDeviceKey.generate({ extractable: true })
  const box = await BoxKey.generate({ extractable: true })
  writePrivateFile(dir.boxKeyFile, keyPairJson('kai-sync/box-key', await box.exportPkcs8(), box.publicKey))
  writePrivateFile(dir.deviceKeyFile, keyPairJson('kai-sync/device-key', await device.exportPkcs8(), device.publicKey))
  // Reload from the files, so the keys in use are the non-extractable ones.
  const loaded = await loadOrCreateDeviceKeys(dir)
  return { ...loaded, created: true }
}

function keyPairJson(type: 'kai-sync/device-key' | 'kai-sync/box-key', pkcs8: Uint8Array, publicKey: Uint8Array): string {
  const json = JSON.stringify({ type, version: 1, pkcs8: toBase64Url(pkcs8), public: toBase64Url(publicKey) }, null, 2) + '\n'
  pkcs8.fill(0)
  return json
}

/** A session's keys, one file per session, rewritten whole when an epoch is added. */
export async function loadSessionKeys(dir: DataDir, sessionId: string): Promise<SessionKey[]> {
  const path = dir.sessionKeyFile(sessionId)
  const file = readJson(SessionKeysFileSchema, path)
  if (!file) return []
  if (file.session_id !== sessionId) throw new KaiError('malformed', `${path} holds the keys of another session`)
  return Promise.all(file.epochs.map((e) => SessionKey.fromRaw(e.epoch, bytes(e.key, path), { extractable: true })))
}

export async function saveSessionKeys(dir: DataDir, sessionId: string, keys: Iterable<SessionKey>): Promise<void> {
  const epochs: Array<{ epoch: number; key: string }> = []
  for (const key of keys) {
    const raw = await key.exportRaw()
    epochs.push({ epoch: key.epoch, key: toBase64Url(raw) })
    raw.fill(0)
  }
  epochs.sort((a, b) => a.epoch - b.epoch)
  writePrivateFile(dir.sessionKeyFile(sessionId), JSON.stringify({ type: 'kai-sync/session-keys', version: 1, session_id: sessionId, epochs }, null, 2) + '\n')
}
