import { createPublicKey, verify, type KeyObject } from 'node:crypto'
import { passesEd25519Prechecks, toBase64Url, type SignatureVerifier } from '@kai-sync/crypto'

// Ed25519 through node:crypto's callback API: the same OpenSSL check as
// WebCrypto in Node, run on the libuv thread pool, with less per-call
// overhead than WebCrypto's promise and buffer handling, which matters at
// one verification per relayed envelope. The prechecks are the crypto
// package's, so the acceptance rule stays the one every replica applies.

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const MAX_KEYS = 4096

export function nodeVerifier(): SignatureVerifier {
  const keys = new Map<string, KeyObject>()
  const keyFor = (publicKey: Uint8Array): KeyObject => {
    const id = toBase64Url(publicKey)
    let key = keys.get(id)
    if (!key) {
      if (keys.size >= MAX_KEYS) keys.clear()
      key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' })
      keys.set(id, key)
    }
    return key
  }
  return {
    name: 'node',
    verify(publicKey, message, signature) {
      if (!passesEd25519Prechecks(publicKey, signature)) return Promise.resolve(false)
      const key = keyFor(publicKey)
      return new Promise((resolve) => verify(null, message, key, signature, (err, ok) => resolve(!err && ok)))
    },
  }
}
