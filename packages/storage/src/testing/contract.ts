import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { UpdateStore } from '../update-store'

export interface UpdateStoreFixture {
  store: UpdateStore
  /** Closes the store and opens it again on the same data. */
  reopen(): Promise<UpdateStore>
  teardown(): Promise<void>
}

const bytes = (...values: number[]) => new Uint8Array(values)
const sorted = (updates: Uint8Array[]) => updates.map((u) => [...u].join(',')).sort()

/**
 * What every UpdateStore must do, run against a real backend. A backend's
 * own test file calls this with a setup that opens a fresh, empty store.
 */
export function runUpdateStoreContract(name: string, setup: () => Promise<UpdateStoreFixture>): void {
  describe(`${name}: the UpdateStore contract`, () => {
    let fixture: UpdateStoreFixture
    beforeEach(async () => {
      fixture = await setup()
    })
    afterEach(async () => {
      await fixture.teardown()
    })

    it('an unknown room loads as empty', async () => {
      expect(await fixture.store.load('nobody')).toEqual([])
    })

    it('loads every appended update, byte for byte', async () => {
      const { store } = fixture
      const big = new Uint8Array(256 * 1024).map((_, i) => i * 7)
      await store.append('a', bytes(1, 2, 3))
      await store.append('a', big)
      await store.append('a', bytes(0))
      const loaded = (await store.load('a')).map((u) => u.update)
      expect(sorted(loaded)).toEqual(sorted([bytes(1, 2, 3), big, bytes(0)]))
    })

    it('keeps rooms apart, even when one name is a prefix of another or has separators', async () => {
      const { store } = fixture
      const names = ['a', 'ab', 'a:b', 'a/b', 'a%3Ab', 'ü']
      for (const [i, room] of names.entries()) await store.append(room, bytes(i))
      for (const [i, room] of names.entries()) expect((await store.load(room)).map((u) => [...u.update])).toEqual([[i]])
      expect((await store.rooms()).sort()).toEqual([...names].sort())
    })

    it('replace swaps exactly the named updates for the merged one', async () => {
      const { store } = fixture
      const k1 = await store.append('r', bytes(1))
      const k2 = await store.append('r', bytes(2))
      // Another writer's update, which the caller did not merge, must survive.
      await store.append('r', bytes(3))
      await store.replace('r', [k1, k2], bytes(12))
      expect(sorted((await store.load('r')).map((u) => u.update))).toEqual(sorted([bytes(12), bytes(3)]))
      await store.append('r', bytes(4))
      expect(sorted((await store.load('r')).map((u) => u.update))).toEqual(sorted([bytes(12), bytes(3), bytes(4)]))
    })

    it('keys of a room are distinct, so a replace never removes a later update', async () => {
      const { store } = fixture
      const keys = await Promise.all([1, 2, 3, 4, 5].map((i) => store.append('r', bytes(i))))
      expect(new Set(keys).size).toBe(5)
      const merged = await store.replace('r', keys.slice(0, 2), bytes(9))
      const later = await store.append('r', bytes(6))
      expect(new Set([...keys, merged, later]).size).toBe(7)
    })

    it('everything survives closing and reopening', async () => {
      const k = await fixture.store.append('r', bytes(1))
      await fixture.store.append('r', bytes(2))
      await fixture.store.replace('r', [k], bytes(11))
      const store = await fixture.reopen()
      expect(sorted((await store.load('r')).map((u) => u.update))).toEqual(sorted([bytes(11), bytes(2)]))
      await store.append('r', bytes(3))
      expect((await store.load('r')).length).toBe(3)
      expect(await store.rooms()).toEqual(['r'])
    })
  })
}
