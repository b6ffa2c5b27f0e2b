export { spawnChild, type ChildHandle, type SpawnOptions } from './child'
export { waitForListening, type Listening } from './listening'
export { freePort } from './free-port'
export { RUN_TS } from './tsx'
