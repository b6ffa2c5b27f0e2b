import { createRequire } from 'node:module'

// libsodium through sodium-native, which ships prebuilt binaries for the
// common platforms. Its Ed25519 check costs about half of OpenSSL 3.0's on
// these machines; where it cannot load, the relay uses node:crypto.

export interface Sodium {
  crypto_sign_verify_detached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
}

let loaded: Sodium | null | undefined

export function loadSodium(): Sodium | null {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('sodium-native') as Sodium
    } catch {
      loaded = null
    }
  }
  return loaded
}
