import { type SignatureVerifier } from '@kai-sync/crypto'
import { CAPABILITY_PARAM, decodeCapability, verifyCapability } from '@kai-sync/crypto/capability'
import { isKaiError } from '@kai-sync/model'
import { CloseCode, Refusal } from './close-codes'
import type { NonceCache } from './nonce-cache'

/** What a valid capability proves: this device asked for this room, now, once. */
export interface Admission {
  device: Uint8Array
}

/** Session ids are base64url; a room name is at most 200 such characters. */
export const ROOM_NAME = /^[A-Za-z0-9_-]{1,200}$/

/**
 * Checks the capability in a connection's URL: present, well formed, for
 * this room, signed by the device it names, unexpired, and not used before.
 * Whether that device may join the room is the roster's to say.
 */
export async function admit(
  room: string,
  params: URLSearchParams,
  options: { verifier: SignatureVerifier; nonces: NonceCache; maxLifetimeMs: number; now?: number },
): Promise<Admission> {
  const param = params.get(CAPABILITY_PARAM)
  if (!param) throw new Refusal(CloseCode.Unauthenticated, `no capability: pass one in the ${CAPABILITY_PARAM} URL parameter`)
  try {
    const capability = decodeCapability(param)
    await verifyCapability(capability, options.verifier, { room, now: options.now, maxLifetimeMs: options.maxLifetimeMs })
    if (!(await claim(options.nonces, capability.nonce, capability.expiresAt))) {
      throw new Refusal(CloseCode.Unauthenticated, 'this capability was already used; sign a new one for each connection')
    }
    return { device: capability.device }
  } catch (e) {
    if (e instanceof Refusal) throw e
    if (isKaiError(e, 'expired')) throw new Refusal(CloseCode.Unauthenticated, e.message)
    if (isKaiError(e, 'wrong_session')) throw new Refusal(CloseCode.Unauthenticated, 'the capability was signed for another room')
    if (isKaiError(e, 'bad_signature')) throw new Refusal(CloseCode.Unauthenticated, 'the capability signature does not verify')
    throw new Refusal(CloseCode.Unauthenticated, 'the capability does not decode')
  }
}

/** A nonce store that cannot answer (Redis down) is the relay's trouble, not a bad capability: try again later. */
async function claim(nonces: NonceCache, nonce: Uint8Array, expiresAt: number): Promise<boolean> {
  try {
    return await nonces.claim(nonce, expiresAt)
  } catch {
    throw new Refusal(CloseCode.TryAgainLater, 'the relay cannot check capabilities right now; reconnect later')
  }
}
