export { type UpdateStore, type UpdateKey, type StoredUpdate } from './update-store'
export { LevelUpdateStore } from './level-update-store'
export { PostgresUpdateStore } from './postgres-update-store'
