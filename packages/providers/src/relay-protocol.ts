// What the kai-sync relay adds to the y-websocket protocol, shared by the
// relay and its clients.

/**
 * Relay to client, only to a client that asked with `?ack=1`: (client,
 * clock) pairs in the state-vector encoding, saying what the relay has
 * stored. A stock provider would log an unknown type, hence the opt-in.
 */
export const MESSAGE_ACK = 75
/** The URL parameter with which a client asks for acknowledgements. */
export const ACK_PARAM = 'ack'
