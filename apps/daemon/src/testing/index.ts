export { TSX, freePort, spawnChild, type ChildHandle } from './processes'
export { spawnStockRelay, spawnStandInRelay, type TestRelay } from './stock-relay'
export { KAI_CLI, kai, spawnDaemon, runCli, spawnCli, type DaemonProcess, type DaemonProcessOptions, type CliResult } from './daemon-process'
export { eventually } from './wait'
