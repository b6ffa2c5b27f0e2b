import { concatBytes, randomBytes, sha256, toBase64Url, utf8 } from './bytes'
import { STREAM_BYTES } from './envelope'

const CLIENT_ID_DOMAIN = utf8('kai-sync/client-id/v1\0')
const SESSION_ID_DOMAIN = utf8('kai-sync/session-id/v1\0')
export const SESSION_NONCE_BYTES = 16

/** A new stream id: one per JS context (tab, popup, worker, process). */
export function newStreamId(): Uint8Array {
  return randomBytes(STREAM_BYTES)
}

/**
 * The Yjs client id a stream writes as, derived from the device key and the
 * stream, so a receiver can tell from the signed header alone that an
 * update's structs belong to its signer. A context whose derived id is
 * already in its doc picks another stream id.
 */
export function deriveClientId(device: Uint8Array, stream: Uint8Array): number {
  const h = sha256(CLIENT_ID_DOMAIN, device, stream)
  return ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0
}

/**
 * A session id bound to its owner's key: 128 bits of SHA-256 over the owner
 * key and a nonce. Whoever creates a room must show the genesis entry it
 * derives from, so nobody can claim another owner's session id.
 */
export function deriveSessionId(owner: Uint8Array, nonce: Uint8Array): string {
  return toBase64Url(sha256(concatBytes(SESSION_ID_DOMAIN, owner, nonce)).subarray(0, 16))
}
