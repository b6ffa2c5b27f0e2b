import { KaiError } from '@kai-sync/model'
import type { KeyObject } from 'node:crypto'
import { randomBytes } from './bytes'
import { nodeCrypto } from './node-crypto'

export const IV_BYTES = 12
const KEY_BYTES = 32
const TAG_BYTES = 16

function subtle(): SubtleCrypto {
  return globalThis.crypto.subtle
}

/**
 * The AES-256-GCM key of one session epoch. Every envelope of the epoch is
 * sealed with it under a fresh random 96-bit IV; at 2^32 envelopes per key
 * the IV collision bound would bite, far beyond any session's epoch.
 */
export class SessionKey {
  /** The same key as a Node KeyObject, for node:crypto's faster AES-GCM. */
  private nodeKey: KeyObject | undefined

  private constructor(
    readonly epoch: number,
    readonly key: CryptoKey,
  ) {
    this.nodeKey = nodeCrypto?.KeyObject.from(key)
  }

  /**
   * A fresh key. Extractable only when it must be handed to another device
   * (the handoff wraps it for the target); stored keys should not be.
   */
  static async generate(epoch: number, options: { extractable?: boolean } = {}): Promise<SessionKey> {
    const key = await subtle().generateKey({ name: 'AES-GCM', length: 256 }, options.extractable ?? false, ['encrypt', 'decrypt'])
    return new SessionKey(epoch, key)
  }

  static async fromRaw(epoch: number, raw: Uint8Array, options: { extractable?: boolean } = {}): Promise<SessionKey> {
    if (raw.length !== KEY_BYTES) throw new KaiError('invalid_input', `a session key is ${KEY_BYTES} bytes, not ${raw.length}`)
    const key = await subtle().importKey('raw', raw as BufferSource, { name: 'AES-GCM' }, options.extractable ?? false, ['encrypt', 'decrypt'])
    return new SessionKey(epoch, key)
  }

  static fromCryptoKey(epoch: number, key: CryptoKey): SessionKey {
    return new SessionKey(epoch, key)
  }

  get extractable(): boolean {
    return this.key.extractable
  }

  async exportRaw(): Promise<Uint8Array> {
    if (!this.key.extractable) throw new KaiError('forbidden', `the key of epoch ${this.epoch} is not extractable`)
    return new Uint8Array(await subtle().exportKey('raw', this.key))
  }

  async encrypt(plaintext: Uint8Array, associatedData: Uint8Array): Promise<{ iv: Uint8Array; ciphertext: Uint8Array }> {
    const iv = randomBytes(IV_BYTES)
    if (this.nodeKey) {
      // Same layout as WebCrypto's output: ciphertext, then the 16-byte tag.
      const cipher = nodeCrypto!.createCipheriv('aes-256-gcm', this.nodeKey, iv)
      cipher.setAAD(associatedData)
      const head = cipher.update(plaintext)
      const tail = cipher.final()
      const ciphertext = new Uint8Array(head.length + tail.length + TAG_BYTES)
      ciphertext.set(head, 0)
      ciphertext.set(tail, head.length)
      ciphertext.set(cipher.getAuthTag(), head.length + tail.length)
      return { iv, ciphertext }
    }
    const ciphertext = await subtle().encrypt(
      { name: 'AES-GCM', iv: iv as BufferSource, additionalData: associatedData as BufferSource },
      this.key,
      plaintext as BufferSource,
    )
    return { iv, ciphertext: new Uint8Array(ciphertext) }
  }

  async decrypt(iv: Uint8Array, ciphertext: Uint8Array, associatedData: Uint8Array): Promise<Uint8Array> {
    try {
      if (this.nodeKey) {
        if (ciphertext.length < TAG_BYTES) throw new Error('shorter than the tag')
        const decipher = nodeCrypto!.createDecipheriv('aes-256-gcm', this.nodeKey, iv)
        decipher.setAAD(associatedData)
        decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES))
        const head = decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES))
        const tail = decipher.final()
        if (tail.length === 0) return new Uint8Array(head.buffer, head.byteOffset, head.length)
        const out = new Uint8Array(head.length + tail.length)
        out.set(head, 0)
        out.set(tail, head.length)
        return out
      }
      const plaintext = await subtle().decrypt(
        { name: 'AES-GCM', iv: iv as BufferSource, additionalData: associatedData as BufferSource },
        this.key,
        ciphertext as BufferSource,
      )
      return new Uint8Array(plaintext)
    } catch (cause) {
      throw new KaiError('decrypt_failed', `epoch ${this.epoch}: the authentication tag does not match`, { cause })
    }
  }
}

/** The session keys a device holds, one per epoch. */
export class SessionKeyring {
  private readonly keys = new Map<number, SessionKey>()

  constructor(keys: Iterable<SessionKey> = []) {
    for (const k of keys) this.add(k)
  }

  add(key: SessionKey): void {
    this.keys.set(key.epoch, key)
  }

  get(epoch: number): SessionKey | undefined {
    return this.keys.get(epoch)
  }

  has(epoch: number): boolean {
    return this.keys.has(epoch)
  }

  /** The newest epoch's key: what new envelopes are sealed with. */
  get current(): SessionKey {
    let newest: SessionKey | undefined
    for (const k of this.keys.values()) if (!newest || k.epoch > newest.epoch) newest = k
    if (!newest) throw new KaiError('wrong_epoch', 'this device holds no session key yet')
    return newest
  }

  epochs(): number[] {
    return [...this.keys.keys()].sort((a, b) => a - b)
  }
}
