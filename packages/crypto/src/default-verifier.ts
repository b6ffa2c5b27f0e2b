import { hasWebCryptoEd25519, webCryptoVerifier, type SignatureVerifier } from './ed25519'
import { nodeCrypto } from './node-crypto'
import { nodeVerifier } from './node-verifier'

let defaultVerifierPromise: Promise<SignatureVerifier> | undefined

/**
 * node:crypto in Node (OpenSSL, as WebCrypto there, without a thread-pool
 * trip per check), WebCrypto where the platform has Ed25519, noble
 * elsewhere (fetched only there: see ed25519-noble.ts).
 */
export function defaultVerifier(): Promise<SignatureVerifier> {
  defaultVerifierPromise ??= nodeCrypto ? Promise.resolve(nodeVerifier()) : hasWebCryptoEd25519().then(async (ok) => (ok ? webCryptoVerifier() : (await import('./ed25519-noble')).nobleVerifier))
  return defaultVerifierPromise
}
