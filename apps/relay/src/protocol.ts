import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import * as Y from 'yjs'
import { MESSAGE_ACK } from '@kai-sync/providers'

// The y-websocket message types, as the stock provider and server number
// them, plus one of ours. A stock provider logs and ignores a type it does
// not know, so the relay sends MESSAGE_ACK only to a client that asked for
// it with `?ack=1`.

export const MESSAGE_SYNC = 0
export const MESSAGE_AWARENESS = 1
export const MESSAGE_AUTH = 2
export const MESSAGE_QUERY_AWARENESS = 3
export { MESSAGE_ACK, ACK_PARAM } from '@kai-sync/providers'
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

export function updateMessage(update: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, MESSAGE_SYNC)
  syncProtocol.writeUpdate(e, update)
  return encoding.toUint8Array(e)
}

export function awarenessMessage(update: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, MESSAGE_AWARENESS)
  encoding.writeVarUint8Array(e, update)
  return encoding.toUint8Array(e)
}

/** An acknowledgement: (client, clock) pairs, in the state-vector encoding. */
export function ackMessage(state: Map<number, number>): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, MESSAGE_ACK)
  encoding.writeVarUint(e, state.size)
  for (const [client, clock] of state) {
    encoding.writeVarUint(e, client)
    encoding.writeVarUint(e, clock)
  }
  return encoding.toUint8Array(e)
}
