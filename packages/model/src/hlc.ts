// A hybrid logical clock (Kulkarni et al.): physical time in ms plus a
// counter, so causally later writes always compare greater even when device
// clocks disagree. Encoded as a fixed-width string whose lexicographic order
// is the clock order, with the device id as the final tie-breaker.

export interface HlcTimestamp {
  readonly wall: number
  readonly counter: number
  readonly device: string
}

const WALL_DIGITS = 15
const COUNTER_DIGITS = 6
// A remote clock further ahead than this is treated as broken, not adopted,
// so one device with a wrong clock cannot drag every other device's clock.
const MAX_DRIFT_MS = 24 * 60 * 60 * 1000

export function encodeHlc(t: HlcTimestamp): string {
  return `${String(t.wall).padStart(WALL_DIGITS, '0')}:${String(t.counter).padStart(COUNTER_DIGITS, '0')}:${t.device}`
}

export function decodeHlc(s: string): HlcTimestamp {
  const first = s.indexOf(':')
  const second = s.indexOf(':', first + 1)
  const wall = Number(s.slice(0, first))
  const counter = Number(s.slice(first + 1, second))
  if (first !== WALL_DIGITS || second !== WALL_DIGITS + COUNTER_DIGITS + 1 || !Number.isSafeInteger(wall) || !Number.isSafeInteger(counter)) {
    throw new Error(`not a hybrid logical clock value: ${s.slice(0, 40)}`)
  }
  return { wall, counter, device: s.slice(second + 1) }
}

export function compareHlc(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

export class HybridClock {
  private wall = 0
  private counter = 0

  constructor(
    readonly device: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** A timestamp for a local event, greater than every one seen so far. */
  tick(): string {
    const physical = this.now()
    if (physical > this.wall) {
      this.wall = physical
      this.counter = 0
    } else {
      this.counter++
    }
    return encodeHlc({ wall: this.wall, counter: this.counter, device: this.device })
  }

  /** Advance past a timestamp received from another device. */
  observe(remote: string): void {
    let t: HlcTimestamp
    try {
      t = decodeHlc(remote)
    } catch {
      return
    }
    if (t.wall > this.now() + MAX_DRIFT_MS) return
    if (t.wall > this.wall) {
      this.wall = t.wall
      this.counter = t.counter
    } else if (t.wall === this.wall && t.counter > this.counter) {
      this.counter = t.counter
    }
  }
}
