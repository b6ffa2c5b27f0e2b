export {
  connectRelay,
  RelayConnection,
  DEFAULT_REFUSAL_RETRY,
  type CapabilitySource,
  type ConnectRelayOptions,
  type RefusalRetry,
  type RelayConnectionEvents,
  type RelayState,
} from './connect-relay'
