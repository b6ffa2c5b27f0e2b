import type { Counter } from 'prom-client'

type LabelValue = string | number

/** One series of a counter, bound once: what a hot path adds to (Metrics.counter). */
export interface CounterSeries {
  add(by?: number): void
}

class Slot implements CounterSeries {
  n = 0
  constructor(private readonly name: string) {}
  add(by = 1): void {
    if (!(by >= 0) || by === Infinity) throw new Error(`${this.name} cannot grow by ${by}`)
    this.n += by
  }
}

/**
 * One counter's running totals, by the value of its one label (or a single
 * total if it has none), handed to its prom-client Counter when scraped.
 * prom-client's own inc hashes and checks the labels on every call (a
 * labelled child, `counter.labels(...)`, does the same per inc in 15.x),
 * and the relay counts per frame and per message: adding a number here
 * costs less, and a scrape reads the same values.
 */
export class CounterTotals {
  private readonly total: Slot
  private readonly byValue = new Map<LabelValue, Slot>()

  constructor(
    private readonly name: string,
    /** The counter's one label; undefined if it has none. */
    private readonly label: string | undefined,
  ) {
    this.total = new Slot(name)
  }

  add(labels: Record<string, LabelValue> | undefined, by: number): void {
    if (this.label === undefined) {
      if (labels) for (const key in labels) throw new Error(`${this.name} has no label ${key}`)
      return this.total.add(by)
    }
    const value = labels?.[this.label]
    if (value === undefined) throw new Error(`${this.name} needs its label ${this.label}`)
    for (const key in labels) if (key !== this.label) throw new Error(`${this.name} has no label ${key}`)
    this.series(value).add(by)
  }

  /** The series without labels, or the one for this label value: bound once, added to on every frame or message. */
  series(value?: LabelValue): CounterSeries {
    if (this.label === undefined) {
      if (value !== undefined) throw new Error(`${this.name} has no label`)
      return this.total
    }
    if (value === undefined) throw new Error(`${this.name} needs its label ${this.label}`)
    let slot = this.byValue.get(value)
    if (!slot) this.byValue.set(value, (slot = new Slot(this.name)))
    return slot
  }

  /** Sets `counter` to the totals (its collect hook, run before each scrape). */
  publish(counter: Counter): void {
    counter.reset()
    if (this.label === undefined) counter.inc(this.total.n)
    else for (const [value, slot] of this.byValue) if (slot.n > 0) counter.inc({ [this.label]: value }, slot.n)
  }
}
