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

    it('updates appended at once, to several rooms, all load back, also after reopening', async () => {
      const { store } = fixture
      const updates = (room: number) => Array.from({ length: 40 }, (_, i) => bytes(room, i, ...new Array(i).fill(7)))
      await Promise.all([0, 1, 2].flatMap((room) => updates(room).map((u) => store.append(`room-${room}`, u))))
      const check = async (s: UpdateStore) => {
        for (const room of [0, 1, 2]) expect(sorted((await s.load(`room-${room}`)).map((u) => u.update))).toEqual(sorted(updates(room)))
      }
      await check(store)
      await check(await fixture.reopen())
    })

    it('updates of every size appended at once to one room load back byte for byte (one record may hold them all)', async () => {
      const { store } = fixture
      // Lengths whose varuint takes one, two and three bytes, and the edges between.
      const updates = [0, 1, 127, 128, 300, 16_383, 16_384, 70_000].map((n, i) => new Uint8Array(n).map((_, j) => (i * 31 + j) & 0xff))
      await Promise.all(updates.map((u) => store.append('sizes', u)))
      expect(sorted((await store.load('sizes')).map((u) => u.update))).toEqual(sorted(updates))
      const reopened = await fixture.reopen()
      expect(sorted((await reopened.load('sizes')).map((u) => u.update))).toEqual(sorted(updates))
    })

    it('a replace removes only what its keys name, never a later update', async () => {
      const { store } = fixture
      // Appends that reach the disk together may share a key; it names all of them.
      const keys = await Promise.all([1, 2, 3, 4, 5].map((i) => store.append('r', bytes(i))))
      const merged = await store.replace('r', keys, bytes(9))
      expect(keys).not.toContain(merged)
      const [later] = await Promise.all([store.append('r', bytes(6)), store.replace('r', [merged], bytes(9, 9))])
      expect([...keys, merged]).not.toContain(later)
      expect(sorted((await store.load('r')).map((u) => u.update))).toEqual(sorted([bytes(9, 9), bytes(6)]))
    })

    it('deleteRoom removes one room whole, also after reopening, and the room can start again', async () => {
      const { store } = fixture
      const k = await store.append('gone', bytes(1))
      await store.append('gone', bytes(2))
      await store.replace('gone', [k], bytes(11))
      await store.append('gone:not', bytes(3))
      await Promise.all([store.append('kept', bytes(4)), store.deleteRoom('gone')])
      expect(await store.load('gone')).toEqual([])
      expect((await store.rooms()).sort()).toEqual(['gone:not', 'kept'])
      await store.deleteRoom('never-was')
      const reopened = await fixture.reopen()
      expect(await reopened.load('gone')).toEqual([])
      expect((await reopened.rooms()).sort()).toEqual(['gone:not', 'kept'])
      await reopened.append('gone', bytes(5))
      expect((await reopened.load('gone')).map((u) => [...u.update])).toEqual([[5]])
      expect((await reopened.rooms()).sort()).toEqual(['gone', 'gone:not', 'kept'])
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
