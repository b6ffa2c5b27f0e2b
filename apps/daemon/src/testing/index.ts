export { freePort, spawnChild, type ChildHandle } from './processes'
export { spawnStockRelay, type TestRelay } from './stock-relay'
export { spawnDaemon, runCli, spawnCli, type DaemonProcess, type DaemonProcessOptions, type CliResult } from './daemon-process'
