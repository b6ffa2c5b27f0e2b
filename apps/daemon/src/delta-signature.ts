import { concatBytes, defaultVerifier, fromBase64Url, toBase64Url, utf8, type DeviceKey } from '@kai-sync/crypto'
import { KaiError } from '@kai-sync/model'

// What a client signs for `POST /session/:id/sync`:
//
//   signed bytes = UTF-8("kai-sync/session-delta/v1") || 0x00 || UTF-8(JCS(delta))
//
// where JCS is the JSON Canonicalization Scheme (RFC 8785): no whitespace,
// object members sorted by the UTF-16 code units of their names, strings
// and numbers serialised as ECMAScript's JSON.stringify does. The delta is
// canonicalised exactly as the client sent it (before any default is
// filled in), so a client in any language can reproduce the bytes. The
// signature is Ed25519 (RFC 8032) by a key registered with
// `POST /clients`, sent as unpadded base64url (86 characters).

export const DELTA_SIGNING_DOMAIN = 'kai-sync/session-delta/v1'

/** RFC 8785 canonical JSON of a JSON value; throws `invalid_input` on anything JSON cannot hold. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new KaiError('invalid_input', 'JSON numbers are finite')
    return JSON.stringify(value)
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      // Default sort compares UTF-16 code units, as RFC 8785 requires.
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  throw new KaiError('invalid_input', `a ${typeof value} is not JSON`)
}

export function deltaSigningBytes(delta: unknown): Uint8Array {
  return concatBytes(utf8(DELTA_SIGNING_DOMAIN), new Uint8Array([0]), utf8(canonicalJson(delta)))
}

/** Signs a delta as a client would (the TypeScript reference for other languages). */
export async function signDelta(delta: unknown, key: DeviceKey): Promise<string> {
  return toBase64Url(await key.sign(deltaSigningBytes(delta)))
}

/**
 * Returns which of `keys` signed `delta`, or throws `bad_signature`. Keys
 * are few (one per client program), so each is tried in turn.
 */
export async function verifyDeltaSignature(delta: unknown, signature: string, keys: readonly Uint8Array[]): Promise<Uint8Array> {
  const sig = fromBase64Url(signature)
  if (!sig || sig.length !== 64) throw new KaiError('bad_signature', 'the signature must be 64 bytes of Ed25519, unpadded base64url')
  if (keys.length === 0) throw new KaiError('bad_signature', 'no client key is registered with this daemon: register one with POST /clients (kai client add)')
  const message = deltaSigningBytes(delta)
  const verifier = await defaultVerifier()
  for (const key of keys) if (await verifier.verify(key, message, sig)) return key
  throw new KaiError('bad_signature', 'the signature does not verify with any registered client key; sign the canonical delta (see the OpenAPI description of /sync)')
}
