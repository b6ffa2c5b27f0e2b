import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { LevelUpdateStore } from './level-update-store'
import { runUpdateStoreContract } from './testing'

runUpdateStoreContract('LevelUpdateStore', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kai-level-'))
  let store = await LevelUpdateStore.open(dir)
  return {
    store,
    async reopen() {
      await store.close()
      store = await LevelUpdateStore.open(dir)
      return store
    },
    async teardown() {
      await store.close().catch(() => {})
      rmSync(dir, { recursive: true, force: true })
    },
  }
})

it('a second process on the same directory is told the store is in use', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kai-level-'))
  const store = await LevelUpdateStore.open(dir)
  await expect(LevelUpdateStore.open(dir)).rejects.toThrow(/unavailable: .* is in use by another process/)
  await store.close()
  rmSync(dir, { recursive: true, force: true })
})
