import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'

// An awareness update (y-protocols) is a list of (client id, clock, JSON
// state); applied as is, it lets any connection overwrite or remove the
// presence of any client id, another device's included. A connection may
// change only the states of client ids it introduced, so the room keeps
// who introduced each id and filters what arrives through this.

/**
 * The entries of `update` whose client id `mayUpdate` allows: `update`
 * itself if that is all of them, null if none. Throws on a malformed update.
 */
export function ownStates(update: Uint8Array, mayUpdate: (clientId: number) => boolean): Uint8Array | null {
  const d = decoding.createDecoder(update)
  const kept: { clientId: number; clock: number; state: string }[] = []
  let all = true
  for (let n = decoding.readVarUint(d); n > 0; n--) {
    const clientId = decoding.readVarUint(d)
    const clock = decoding.readVarUint(d)
    const state = decoding.readVarString(d)
    if (mayUpdate(clientId)) kept.push({ clientId, clock, state })
    else all = false
  }
  if (all) return update
  if (kept.length === 0) return null
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, kept.length)
  for (const k of kept) {
    encoding.writeVarUint(e, k.clientId)
    encoding.writeVarUint(e, k.clock)
    encoding.writeVarString(e, k.state)
  }
  return encoding.toUint8Array(e)
}
