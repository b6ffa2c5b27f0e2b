import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { KaiError } from '@kai-sync/model'
import { decodeHandoffToken, fromBase64Url, toBase64Url, type HandoffToken } from '@kai-sync/crypto'

// The resume link a handoff's QR code encodes:
//
//   <app url>#kai=<base64url of: version u8 | token varUint8Array
//                  | invite secret 32B | relay url varString
//                  | keys (varUint n, n x (epoch varUint, key 32B))>
//
// Everything after '#' stays in the browser (or the CLI): a fragment is
// never sent to a server, so the relay, which sees the token when it burns
// it, never sees the invite secret or the session keys.

const FORMAT = 1
const PARAM = 'kai='

export interface ResumeLinkPayload {
  token: HandoffToken
  /** The one-time invite key's secret, for the target to sign its own roster entry. */
  inviteSecret: Uint8Array
  /** The relay to reach the session through (ws:// or wss://). */
  relayUrl: string
  /** Every session key epoch the target needs, raw. */
  keys: Array<{ epoch: number; key: Uint8Array }>
}

export function encodeResumeLink(appUrl: string, payload: ResumeLinkPayload): string {
  const e = encoding.createEncoder()
  encoding.writeUint8(e, FORMAT)
  encoding.writeVarUint8Array(e, payload.token.bytes)
  encoding.writeUint8Array(e, payload.inviteSecret)
  encoding.writeVarString(e, payload.relayUrl)
  encoding.writeVarUint(e, payload.keys.length)
  for (const k of payload.keys) {
    encoding.writeVarUint(e, k.epoch)
    encoding.writeUint8Array(e, k.key)
  }
  const base = appUrl.split('#')[0]!
  return `${base}#${PARAM}${toBase64Url(encoding.toUint8Array(e))}`
}

export function parseResumeLink(link: string): ResumeLinkPayload {
  const at = link.indexOf(`#${PARAM}`)
  const bytes = at < 0 ? null : fromBase64Url(link.slice(at + 1 + PARAM.length))
  if (!bytes) throw new KaiError('invalid_input', 'this is not a kai-sync resume link (no #kai= fragment)')
  if (bytes[0] !== FORMAT) throw new KaiError('unsupported_version', `resume link format ${bytes[0]}`)
  try {
    const d = decoding.createDecoder(bytes)
    d.pos = 1
    const token = decodeHandoffToken(decoding.readVarUint8Array(d))
    const inviteSecret = decoding.readUint8Array(d, 32)
    const relayUrl = decoding.readVarString(d)
    const keys: ResumeLinkPayload['keys'] = []
    for (let n = decoding.readVarUint(d); n > 0; n--) keys.push({ epoch: decoding.readVarUint(d), key: decoding.readUint8Array(d, 32) })
    if (d.pos !== bytes.length) throw new KaiError('malformed', 'bytes after the keys')
    if (!/^wss?:\/\//.test(relayUrl)) throw new KaiError('malformed', 'the relay address is not a ws:// or wss:// URL')
    return { token, inviteSecret, relayUrl, keys }
  } catch (e) {
    if (e instanceof KaiError) throw e
    throw new KaiError('malformed', 'the resume link is truncated or corrupt; scan the code again')
  }
}
