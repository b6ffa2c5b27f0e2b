import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import type * as Y from 'yjs'

// The y-websocket message types, as the stock provider and server number
// them, plus one of ours. A stock provider logs and ignores a type it does
// not know, so the relay sends MESSAGE_ACK only to a client that asked for
// it with `?ack=1`.

export const MESSAGE_SYNC = 0
export const MESSAGE_AWARENESS = 1
export const MESSAGE_AUTH = 2
export const MESSAGE_QUERY_AWARENESS = 3
export { MESSAGE_ACK, ACK_PARAM, ackMessage } from '@kai-sync/engine'
/** The URL parameter a peer relay marks its connection with. */
export const PEER_PARAM = 'peer'

export function syncStep1(doc: Y.Doc): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, MESSAGE_SYNC)
  syncProtocol.writeSyncStep1(e, doc)
  return encoding.toUint8Array(e)
}

export function syncStep2(doc: Y.Doc, stateVector: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, MESSAGE_SYNC)
  syncProtocol.writeSyncStep2(e, doc, stateVector)
  return encoding.toUint8Array(e)
}

/** [MESSAGE_SYNC, messageYjsUpdate, varuint length, update], in one exact allocation (no encoder growth and copy). */
export function updateMessage(update: Uint8Array): Uint8Array {
  let lengthBytes = 1
  for (let n = update.length; n > 127; n = Math.floor(n / 128)) lengthBytes++
  const out = new Uint8Array(2 + lengthBytes + update.length)
  out[0] = MESSAGE_SYNC
  out[1] = syncProtocol.messageYjsUpdate
  let pos = 2
  let n = update.length
  while (n > 127) {
    out[pos++] = 0x80 | (n & 0x7f)
    n = Math.floor(n / 128)
  }
  out[pos++] = n
  out.set(update, pos)
  return out
}

export function awarenessMessage(update: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, MESSAGE_AWARENESS)
  encoding.writeVarUint8Array(e, update)
  return encoding.toUint8Array(e)
}
