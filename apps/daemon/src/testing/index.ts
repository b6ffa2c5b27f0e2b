export { spawnKaiRelay, type TestRelay } from './kai-relay'
export { spawnStockRelay, type StockRelay } from './stock-relay'
export { KAI_CLI, kai, spawnDaemon, runCli, spawnCli, type DaemonProcess, type DaemonProcessOptions, type CliResult } from './daemon-process'
export { eventually } from './wait'
