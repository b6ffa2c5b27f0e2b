import { describe, expect, it } from 'vitest'
import { EpochStarts } from './epoch-starts'

const self = new Uint8Array(32)

describe('the stale-epoch rule', () => {
  it('an epoch is valid until a newer one starts, and only until then', () => {
    const starts = new EpochStarts(self)
    expect(starts.record(1, 1000)).toBe(true)
    expect(starts.record(2, 5000)).toBe(true)
    expect(starts.staleness({ epoch: 0, createdAt: 1000 })).toBeNull()
    expect(starts.staleness({ epoch: 0, createdAt: 1001 })).toMatchObject({ code: 'stale_epoch' })
    expect(starts.staleness({ epoch: 1, createdAt: 4000 })).toBeNull()
    expect(starts.staleness({ epoch: 1, createdAt: 5001 })).toMatchObject({ code: 'stale_epoch' })
    expect(starts.staleness({ epoch: 2, createdAt: 99_999 })).toBeNull()
  })

  it('the earliest start of an epoch counts, whatever order its grants come in', () => {
    const a = new EpochStarts(self)
    const b = new EpochStarts(self)
    a.record(1, 3000)
    expect(a.record(1, 2000)).toBe(true)
    expect(a.record(1, 2500)).toBe(false)
    b.record(1, 2000)
    b.record(1, 3000)
    for (const createdAt of [1999, 2000, 2001, 3001]) expect(a.staleness({ epoch: 0, createdAt })).toEqual(b.staleness({ epoch: 0, createdAt }))
    expect(a.staleness({ epoch: 0, createdAt: 2001 })).not.toBeNull()
  })

  it('the intake refuses others\' stale envelopes, not this device\'s own (it re-seals those)', () => {
    const starts = new EpochStarts(self)
    starts.record(1, 1000)
    expect(starts.refusal({ epoch: 0, createdAt: 2000, device: new Uint8Array(32).fill(7) })).toMatchObject({ code: 'stale_epoch' })
    expect(starts.refusal({ epoch: 0, createdAt: 2000, device: self })).toBeNull()
  })
})
