import { describe, expect, it } from 'vitest'
import { HybridClock, compareHlc, decodeHlc, encodeHlc } from './hlc'

describe('HybridClock', () => {
  it('orders local events even when the wall clock stands still or goes back', () => {
    let now = 1000
    const clock = new HybridClock('dev-a', () => now)
    const a = clock.tick()
    const b = clock.tick()
    now = 500
    const c = clock.tick()
    expect(compareHlc(a, b)).toBe(-1)
    expect(compareHlc(b, c)).toBe(-1)
  })

  it('a write after seeing a remote one is later than it, even with a slow clock', () => {
    const fast = new HybridClock('a', () => 5000)
    const slow = new HybridClock('b', () => 1000)
    const remote = fast.tick()
    slow.observe(remote)
    expect(compareHlc(slow.tick(), remote)).toBe(1)
  })

  it('does not adopt a clock a day or more ahead', () => {
    const clock = new HybridClock('a', () => 1000)
    clock.observe(encodeHlc({ wall: 1000 + 2 * 86_400_000, counter: 0, device: 'evil' }))
    expect(decodeHlc(clock.tick()).wall).toBe(1000)
  })

  it('breaks ties by device id and round-trips its encoding', () => {
    const t = { wall: 42, counter: 3, device: 'dev:with:colons' }
    expect(decodeHlc(encodeHlc(t))).toEqual(t)
    expect(compareHlc(encodeHlc({ ...t, device: 'a' }), encodeHlc({ ...t, device: 'b' }))).toBe(-1)
    expect(() => decodeHlc('nonsense')).toThrow(/hybrid logical clock/)
  })
})
