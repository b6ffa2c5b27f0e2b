import type { KeyObject } from 'node:crypto'
import { toBase64Url } from './bytes'
import { MAX_REMEMBERED_KEYS, passesEd25519Prechecks, type DeviceKey, type SignatureVerifier } from './ed25519-rule'
import { nodeCrypto } from './node-crypto'

// Ed25519 through WebCrypto (the platform's native code): verifying, the
// device keys a browser or a daemon stores, and which to use. The
// acceptance rule every verifier applies is in ed25519-rule.ts; the pure
// JavaScript fallback in ed25519-noble.ts, loaded only where it is needed.

export { isAcceptablePublicKey, passesEd25519Prechecks, type DeviceKey, type SignatureVerifier } from './ed25519-rule'

function subtle(): SubtleCrypto {
  return globalThis.crypto.subtle
}

/** Verifies with the platform's native Ed25519 through WebCrypto. */
export function webCryptoVerifier(): SignatureVerifier {
  // An import in flight, then the key itself, so a known signer's check
  // starts in the same task: an await on the import would queue it behind
  // everything else that task does. A failed import is forgotten.
  const keys = new Map<string, CryptoKey | Promise<CryptoKey>>()
  const keyFor = (publicKey: Uint8Array): CryptoKey | Promise<CryptoKey> => {
    const id = toBase64Url(publicKey)
    const known = keys.get(id)
    if (known) return known
    if (keys.size >= MAX_REMEMBERED_KEYS) keys.clear()
    const importing = subtle().importKey('raw', publicKey as BufferSource, { name: 'Ed25519' }, false, ['verify'])
    keys.set(id, importing)
    const settle = (key?: CryptoKey) => {
      if (keys.get(id) !== importing) return
      if (key) keys.set(id, key)
      else keys.delete(id)
    }
    importing.then(settle, () => settle())
    return importing
  }
  const check = (key: CryptoKey, message: Uint8Array, signature: Uint8Array) =>
    subtle().verify({ name: 'Ed25519' }, key, signature as BufferSource, message as BufferSource)
  return {
    name: 'webcrypto',
    async verify(publicKey, message, signature) {
      if (!passesEd25519Prechecks(publicKey, signature)) return false
      // Non-canonical R is rejected by the native check itself: it compares
      // the recomputed R's canonical encoding with R's bytes.
      const key = keyFor(publicKey)
      return key instanceof Promise ? check(await key, message, signature) : check(key, message, signature)
    },
  }
}

let webCryptoSupport: Promise<boolean> | undefined

/** True where WebCrypto implements Ed25519 (Node 20, current Chromium). */
export function hasWebCryptoEd25519(): Promise<boolean> {
  webCryptoSupport ??= (async () => {
    try {
      const pair = (await subtle().generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as CryptoKeyPair
      const message = new Uint8Array([1])
      const signature = new Uint8Array(await subtle().sign({ name: 'Ed25519' }, pair.privateKey, message))
      return await subtle().verify({ name: 'Ed25519' }, pair.publicKey, signature, message)
    } catch {
      return false
    }
  })()
  return webCryptoSupport
}

/**
 * A WebCrypto key pair. Generated non-extractable by default, so it can be
 * stored in IndexedDB (structured clone keeps CryptoKeys) without the
 * private key ever being readable by script.
 */
export class WebCryptoDeviceKey implements DeviceKey {
  private nodeKey: KeyObject | undefined

  private constructor(
    readonly keyPair: CryptoKeyPair,
    readonly publicKey: Uint8Array,
  ) {}

  static async generate(options: { extractable?: boolean } = {}): Promise<WebCryptoDeviceKey> {
    const pair = (await subtle().generateKey({ name: 'Ed25519' }, options.extractable ?? false, ['sign', 'verify'])) as CryptoKeyPair
    return WebCryptoDeviceKey.fromKeyPair(pair)
  }

  /** A key pair as stored, e.g. read back from IndexedDB. */
  static async fromKeyPair(pair: CryptoKeyPair): Promise<WebCryptoDeviceKey> {
    const raw = new Uint8Array(await subtle().exportKey('raw', pair.publicKey))
    return new WebCryptoDeviceKey(pair, raw)
  }

  /** Imports a PKCS#8 private key (from a key file) as non-extractable. */
  static async fromPkcs8(pkcs8: Uint8Array): Promise<WebCryptoDeviceKey> {
    const privateKey = await subtle().importKey('pkcs8', pkcs8 as BufferSource, { name: 'Ed25519' }, false, ['sign'])
    // WebCrypto cannot derive the public half of an imported private key;
    // the PKCS#8 seed is the last 32 bytes, from which noble derives it.
    const { publicKeyOfSeed } = await import('./ed25519-noble')
    const publicKey = await publicKeyOfSeed(pkcs8.subarray(pkcs8.length - 32))
    const publicCrypto = await subtle().importKey('raw', publicKey as BufferSource, { name: 'Ed25519' }, true, ['verify'])
    return new WebCryptoDeviceKey({ privateKey, publicKey: publicCrypto }, publicKey)
  }

  async exportPkcs8(): Promise<Uint8Array> {
    return new Uint8Array(await subtle().exportKey('pkcs8', this.keyPair.privateKey))
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    // In Node, node:crypto signs with the same key without WebCrypto's trip
    // through the thread pool (about 35 µs inline, against 50 µs and a hop
    // for every envelope sealed). The key stays the non-extractable CryptoKey
    // it is stored as; the KeyObject lives in memory only, as the CryptoKey
    // does (session keys do the same for AES-GCM).
    if (nodeCrypto) {
      this.nodeKey ??= nodeCrypto.KeyObject.from(this.keyPair.privateKey)
      return new Uint8Array(nodeCrypto.sign(null, message, this.nodeKey))
    }
    return new Uint8Array(await subtle().sign({ name: 'Ed25519' }, this.keyPair.privateKey, message as BufferSource))
  }
}

/** A new device key: non-extractable WebCrypto where possible, noble elsewhere. */
export async function generateDeviceKey(): Promise<DeviceKey> {
  if (await hasWebCryptoEd25519()) return WebCryptoDeviceKey.generate()
  const { NobleDeviceKey } = await import('./ed25519-noble')
  return NobleDeviceKey.generate()
}
