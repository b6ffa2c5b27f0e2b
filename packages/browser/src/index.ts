// The IndexedDB plumbing (device-db.ts: openDeviceDb, request, committed)
// is this package's own: the stores below are its public face.
export { loadDeviceKey } from './device-key-store'
export { SessionKeyStore, type StoredSessionKey } from './session-key-store'
export { SessionCatalog, type CatalogEntry, type SessionCatalogEvents } from './session-catalog'
export { WirePersistence, wireDbName, type StoreAcknowledger } from './wire-persistence'
export { BroadcastTransport, wireChannelName } from './broadcast-transport'
export { VolatileStore } from './volatile-store'
export { DroppedOwnDb, DROPPED_DB_NAME } from './dropped-own-db'
// The link itself (relay-link.ts, and capabilitySource, which signs its
// capabilities) loads with a session's first connection: re-exported here,
// it would be in every page's first load (a bundler splitting code keeps a
// barrel's re-exported files with the barrel).
export { relayConnector } from './relay-connector'
export type { ConnectRelay, RelayConnection, RelayConnectionEvents, RelayConnectorOptions, RelayRefusal, RelayTarget } from './relay-connection'
export { leaveBrowserSession, forgetSession, type LeftRoster } from './leave-session'
// Handoff (handOffFromBrowser, acceptHandoffInBrowser, resumeLinkRelay) is
// its own entry, @kai-sync/browser/handoff: re-exported here it would pull
// the QR code encoder into every page that imports this index, since a
// bundler splitting code keeps what a barrel re-exports with the barrel.
export { loadBoxKey } from './device-key-store'
export {
  BrowserSession,
  openBrowserDevice,
  type BrowserDevice,
  type BrowserSessionEvents,
  type BrowserSyncStatus,
  type OpenOptions,
} from './browser-session'
