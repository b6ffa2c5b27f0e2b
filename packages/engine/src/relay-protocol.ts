import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'

// What the kai-sync relay adds to the y-websocket protocol. It lives here,
// below both the relay and its client (@kai-sync/providers), so the relay
// imports no client package to speak it.

/**
 * Relay to client, only to a client that asked with `?ack=1`: (client,
 * clock) pairs in the state-vector encoding, saying what the relay has
 * stored. A stock provider would log an unknown type, hence the opt-in.
 */
export const MESSAGE_ACK = 75
/** The URL parameter with which a client asks for acknowledgements. */
export const ACK_PARAM = 'ack'

/** An acknowledgement message: MESSAGE_ACK, then the (client, clock) pairs. */
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

/** Reads the pairs of an acknowledgement whose type the decoder has already read. */
export function readAck(decoder: decoding.Decoder): Map<number, number> {
  const state = new Map<number, number>()
  for (let n = decoding.readVarUint(decoder); n > 0; n--) {
    const client = decoding.readVarUint(decoder)
    state.set(client, decoding.readVarUint(decoder))
  }
  return state
}
