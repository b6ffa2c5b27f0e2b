import { timingSafeEqual } from 'node:crypto'
import { randomBytes, toBase64Url } from '@kai-sync/crypto'
import { KaiError } from '@kai-sync/model'
import { readPrivateFile, writePrivateFile, type DataDir } from './data-dir'

// The local bearer token: 32 random bytes, base64url, in `<data>/token`
// (0600). Whoever can read it may drive the daemon, exactly like whoever can
// read the key files; the CLI reads it from there.

const TOKEN = /^[A-Za-z0-9_-]{43}$/

export function loadOrCreateToken(dir: DataDir): { token: string; created: boolean } {
  const existing = readPrivateFile(dir.tokenFile)?.trim()
  if (existing) {
    if (!TOKEN.test(existing)) throw new KaiError('malformed', `${dir.tokenFile} does not hold a kai token; delete it to get a new one`)
    return { token: existing, created: false }
  }
  const token = toBase64Url(randomBytes(32))
  writePrivateFile(dir.tokenFile, token + '\n')
  return { token, created: true }
}

/** Throws `unauthenticated` unless the Authorization header carries the token. */
export function checkBearer(header: string | undefined, token: string): void {
  if (!header) throw new KaiError('unauthenticated', 'send the daemon\'s token as "Authorization: Bearer <token>" (it is in the data directory\'s token file)')
  const match = /^Bearer\s+(\S+)$/i.exec(header)
  const presented = Buffer.from(match?.[1] ?? '')
  const expected = Buffer.from(token)
  // Constant time, so the comparison leaks nothing of the token.
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
    throw new KaiError('unauthenticated', 'the bearer token is wrong; read it again from the data directory\'s token file')
  }
}
