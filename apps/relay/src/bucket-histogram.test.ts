import { Histogram, Registry } from 'prom-client'
import { expect, it } from 'vitest'
import { BucketHistogram } from './bucket-histogram'

const BOUNDS = [0.001, 0.01, 0.1, 1]
// On a bound (le is inclusive), between bounds, above the last, zero.
const VALUES = [0, 0.0005, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.99, 1, 1.5, 42]

it('writes what prom-client\'s Histogram writes for the same observations, with and without a label', async () => {
  const theirs = new Registry()
  const ours = new Registry()
  const plain = new Histogram({ name: 'h_seconds', help: 'plain', buckets: BOUNDS, registers: [theirs] })
  const byOp = new Histogram({ name: 'l_seconds', help: 'by op', labelNames: ['op'], buckets: BOUNDS, registers: [theirs] })
  const mine = new BucketHistogram('h_seconds', 'plain', BOUNDS).register(ours)
  const mineByOp = new BucketHistogram('l_seconds', 'by op', BOUNDS, { name: 'op', values: ['append', 'replace'] }).register(ours)
  // prom-client writes a labelled series from its first observation on, in that order
  // (BucketHistogram writes each from the start, in the order it was given): append first.
  VALUES.forEach((v, i) => {
    plain.observe(v)
    mine.of().observe(v)
    const op = i % 3 === 1 ? 'replace' : 'append'
    byOp.labels(op).observe(v)
    mineByOp.of(op).observe(v)
  })
  expect(await ours.metrics()).toBe(await theirs.metrics())
  expect(await ours.metrics()).toMatch(/^h_seconds_bucket\{le="0.01"\} 5$/m)

  ours.resetMetrics()
  expect(await ours.metrics()).toMatch(/^h_seconds_count 0$/m)
  expect(await ours.metrics()).toMatch(/^l_seconds_bucket\{le="\+Inf",op="append"\} 0$/m)
})

it('refuses a series it was not made with, and bounds that do not increase', () => {
  const h = new BucketHistogram('x_seconds', 'x', BOUNDS, { name: 'op', values: ['append'] })
  expect(() => h.of('compact')).toThrow(/no series compact/)
  expect(() => new BucketHistogram('y_seconds', 'y', [0.1, 0.1])).toThrow(/must increase/)
})
