import type { KeyObject } from 'node:crypto'
import { KaiError } from '@kai-sync/model'
import { concatBytes, toBase64Url } from './bytes'
import { passesEd25519Prechecks, type SignatureVerifier } from './ed25519-rule'
import { nodeCrypto } from './node-crypto'

// Ed25519 through node:crypto: the same OpenSSL check as WebCrypto in
// Node, without WebCrypto's trip through the thread pool for every call.
// Alone, a check runs inline (about 0.1 ms, no thread hop: the lowest
// latency, which is what a device waiting for one message sees); while
// others are in flight it goes to the libuv thread pool, so a catch-up or
// a relay under load verifies on the other cores. The prechecks are the
// crypto package's, so the acceptance rule stays the one every replica
// applies (ed25519.test.ts holds it to the same vectors as WebCrypto and
// noble; the relay's verifiers.test.ts holds libsodium to them).

const SPKI_PREFIX = new Uint8Array([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00])
const MAX_KEYS = 4096
const INLINE_PER_MS = 2

/** Node only (see defaultVerifier, which picks it there). */
export function nodeVerifier(): SignatureVerifier {
  const node = nodeCrypto
  if (!node) throw new KaiError('unavailable', 'node:crypto is not available here: use webCryptoVerifier or nobleVerifier')
  const keys = new Map<string, KeyObject>()
  const keyFor = (publicKey: Uint8Array): KeyObject => {
    const id = toBase64Url(publicKey)
    let key = keys.get(id)
    if (!key) {
      if (keys.size >= MAX_KEYS) keys.clear()
      key = node.createPublicKey({ key: Buffer.from(concatBytes(SPKI_PREFIX, publicKey)), format: 'der', type: 'spki' })
      keys.set(id, key)
    }
    return key
  }
  // "Alone": nothing on the pool, and at most INLINE_PER_MS checks this millisecond.
  let inFlight = 0
  let windowStart = 0
  let inWindow = 0
  return {
    name: 'node',
    verify(publicKey, message, signature) {
      if (!passesEd25519Prechecks(publicKey, signature)) return Promise.resolve(false)
      let key: KeyObject
      try {
        key = keyFor(publicKey)
      } catch {
        return Promise.resolve(false) // not a key OpenSSL takes: nothing it signed verifies
      }
      const now = performance.now()
      if (now - windowStart >= 1) {
        windowStart = now
        inWindow = 0
      }
      if (inFlight === 0 && ++inWindow <= INLINE_PER_MS) return Promise.resolve(node.verify(null, message, key, signature))
      inFlight++
      return new Promise((resolve) =>
        node.verify(null, message, key, signature, (err, ok) => {
          inFlight--
          resolve(!err && ok)
        }),
      )
    },
  }
}
