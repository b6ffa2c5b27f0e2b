import { afterAll, beforeAll, expect, it } from 'vitest'
import pg from 'pg'
import { PostgresUpdateStore } from './postgres-update-store'
import { runUpdateStoreContract, startPostgres, type PostgresServer } from './testing'

let server: PostgresServer
let database = 0
beforeAll(async () => {
  server = await startPostgres()
}, 60_000)
afterAll(async () => {
  await server.stop()
})

/** A fresh database per test, so each starts empty. */
async function freshDatabase(): Promise<string> {
  const name = `contract_${++database}`
  const admin = new pg.Client({ connectionString: server.url })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  return server.url.replace(/\/postgres$/, `/${name}`)
}

runUpdateStoreContract('PostgresUpdateStore', async () => {
  const url = await freshDatabase()
  let store = await PostgresUpdateStore.open(url)
  return {
    store,
    async reopen() {
      await store.close()
      store = await PostgresUpdateStore.open(url)
      return store
    },
    async teardown() {
      await store.close().catch(() => {})
    },
  }
})

it('two processes opening one database at once both get the schema', async () => {
  const url = await freshDatabase()
  const [a, b] = await Promise.all([PostgresUpdateStore.open(url), PostgresUpdateStore.open(url)])
  await a.append('r', new Uint8Array([1]))
  expect((await b.load('r')).length).toBe(1)
  await Promise.all([a.close(), b.close()])
})

it('an unreachable server is reported as unavailable', async () => {
  await expect(PostgresUpdateStore.open('postgres://postgres@127.0.0.1:1/postgres')).rejects.toThrow(/unavailable: cannot reach PostgreSQL/)
})
