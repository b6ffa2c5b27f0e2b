import { describe, expect, it } from 'vitest'
import { OrderedIndex } from './ordered-index'

describe('OrderedIndex', () => {
  it('keeps ids ordered by (timestamp, id) whatever the insertion order', () => {
    const index = new OrderedIndex()
    const expected: Array<[number, string]> = []
    let seed = 7
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
    for (let i = 0; i < 500; i++) {
      const ts = Math.floor(rand() * 50)
      const id = `m${Math.floor(rand() * 400)}`
      const at = expected.findIndex(([, e]) => e === id)
      if (at >= 0) expected.splice(at, 1)
      expected.push([ts, id])
      index.set(id, ts)
      if (rand() < 0.1) {
        const [, gone] = expected.splice(Math.floor(rand() * expected.length), 1)[0]!
        index.delete(gone)
      }
    }
    expected.sort(([ta, a], [tb, b]) => ta - tb || (a < b ? -1 : a > b ? 1 : 0))
    expect(index.ids()).toEqual(expected.map(([, id]) => id))
    expect(index.size).toBe(expected.length)
  })

  it('moves an id whose timestamp changed', () => {
    const index = new OrderedIndex()
    index.set('a', 1)
    index.set('b', 2)
    index.set('a', 3)
    expect(index.ids()).toEqual(['b', 'a'])
  })
})
