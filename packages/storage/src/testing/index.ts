// Test helpers for stores: the shared contract, and a real PostgreSQL
// server started for a test run. Import as `@kai-sync/storage/testing`.
export { runUpdateStoreContract, type UpdateStoreFixture } from './contract'
export { startPostgres, type PostgresServer } from './postgres-server'
