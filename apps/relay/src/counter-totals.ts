import type { Counter } from 'prom-client'

type LabelValue = string | number

/**
 * One counter's running totals, by the value of its one label (or a single
 * total if it has none), handed to its prom-client Counter when scraped.
 * prom-client's own inc hashes and checks the labels on every call (a
 * labelled child, `counter.labels(...)`, does the same per inc in 15.x),
 * and the relay counts per frame and per message: adding a number here
 * costs less, and a scrape reads the same values.
 */
export class CounterTotals {
  private total = 0
  private readonly byValue = new Map<LabelValue, number>()

  constructor(
    private readonly name: string,
    /** The counter's one label; undefined if it has none. */
    private readonly label: string | undefined,
  ) {}

  add(labels: Record<string, LabelValue> | undefined, by: number): void {
    if (!Number.isFinite(by) || by < 0) throw new Error(`${this.name} cannot grow by ${by}`)
    if (this.label === undefined) {
      if (labels) for (const key in labels) throw new Error(`${this.name} has no label ${key}`)
      this.total += by
      return
    }
    const value = labels?.[this.label]
    if (value === undefined) throw new Error(`${this.name} needs its label ${this.label}`)
    for (const key in labels) if (key !== this.label) throw new Error(`${this.name} has no label ${key}`)
    this.byValue.set(value, (this.byValue.get(value) ?? 0) + by)
  }

  /** Sets `counter` to the totals (its collect hook, run before each scrape). */
  publish(counter: Counter): void {
    counter.reset()
    if (this.label === undefined) counter.inc(this.total)
    else for (const [value, n] of this.byValue) counter.inc({ [this.label]: value }, n)
  }
}
