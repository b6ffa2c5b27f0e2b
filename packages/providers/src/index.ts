export { connectRelay, RelayConnection, type CapabilitySource, type RelayConnectionEvents } from './connect-relay'
export { MESSAGE_ACK, ACK_PARAM } from './relay-protocol'
