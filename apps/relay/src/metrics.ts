import { performance } from 'node:perf_hooks'
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import { BucketHistogram, type HistogramSeries } from './bucket-histogram'
import { CounterTotals, type CounterSeries } from './counter-totals'

// The relay's metrics on prom-client, in a registry per relay (tests run
// several relays in one process), plus the process's own metrics (CPU,
// memory, event loop lag, GC) in one registry per process: they describe
// the process, and collecting them twice would run two sets of observers.

export type Labels = Record<string, string | number>

const COUNTERS: Record<string, { help: string; labels?: string[] }> = {
  kai_relay_connections_total: { help: 'WebSocket connections accepted after authentication' },
  kai_relay_messages_total: { help: 'Protocol messages received, by type', labels: ['type'] },
  kai_relay_bytes_received_total: { help: 'Bytes received in WebSocket frames' },
  kai_relay_bytes_sent_total: { help: 'Bytes sent in WebSocket frames' },
  kai_relay_rejections_total: { help: 'Connections closed or updates refused, by close code', labels: ['code'] },
  kai_relay_updates_stored_total: { help: 'Updates written to storage' },
  kai_relay_updates_deferred_total: { help: 'Updates held until what they depend on arrived' },
  kai_relay_copies_dropped_total: { help: 'Log items dropped as copies of an envelope already in the log' },
  kai_relay_stale_dropped_total: { help: 'Log items dropped as sealed under an epoch older than one that had started (stale_epoch)' },
  kai_relay_awareness_dropped_total: { help: 'Awareness updates that named client ids another connection introduced (those states were dropped)' },
  kai_relay_storage_errors_total: { help: 'Storage operations that failed' },
  kai_relay_stored_updates_quarantined_total: { help: 'Stored updates that do not decode, skipped when their room loaded and kept in storage' },
  kai_relay_storage_reloads_total: { help: 'Loaded rooms reloaded from storage because updates from other relay processes may have been missed' },
  kai_relay_handoff_requests_total: { help: 'POST /session/:id/handoff and /resume requests, by action and outcome code', labels: ['action', 'code'] },
}

// Seconds: a group commit on a local disk takes about a millisecond; a
// loaded relay or a remote PostgreSQL, tens to hundreds.
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

let processRegistry: Registry | undefined

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
  }
  return processRegistry
}

export type StorageOp = 'append' | 'replace'

/**
 * What the relay records about itself: PromMetrics (prom-client, served
 * at GET /metrics), or NoMetrics (`--metrics off`), which records nothing,
 * so a benchmark can weigh what the metrics cost.
 */
export interface Metrics {
  /** False for NoMetrics: GET /metrics says metrics are off. */
  readonly enabled: boolean
  inc(name: string, labels?: Labels, by?: number): void
  /** A counter with at most one label, bound to one series once: for what counts every frame or message (inc looks the counter up each time). */
  counter(name: string, labelValue?: string | number): CounterSeries
  /** A counter's value (tests read it). */
  get(name: string, labels?: Labels): Promise<number>
  /** A gauge read when scraped. */
  gauge(name: string, help: string, read: () => number): void
  /** The time an update arrived, for stored() and relayed(); undefined if nothing is timed. */
  clock(): number | undefined
  /** An update that arrived at `arrived` (clock()) is stored. */
  stored(arrived: number): void
  /** An update that arrived at `arrived` (clock()) was handed to the room's other sockets. */
  relayed(arrived: number): void
  /** Runs a storage operation, timing it until it commits. */
  timed<T>(op: StorageOp, run: () => Promise<T>): Promise<T>
  /**
   * A storage operation asked for at `asked` (clock()) is seen committed
   * now: for appends, one per update, where wrapping each in timed() would
   * cost a promise per update.
   */
  committed(op: StorageOp, asked: number): void
  readonly contentType: string
  /** The Prometheus text format. */
  render(): Promise<string>
}

export class PromMetrics implements Metrics {
  readonly enabled = true
  readonly registry = new Registry()
  private readonly counters = new Map<string, Counter>()
  /** Counters with at most one label: added up here, handed to prom-client when scraped (see CounterTotals). */
  private readonly totals = new Map<string, CounterTotals>()
  private readonly updateStored: HistogramSeries
  private readonly updateRelayed: HistogramSeries
  /** kai_relay_storage_commit_seconds{op}, a series per op. */
  private readonly storageCommit: Record<StorageOp, HistogramSeries>

  constructor() {
    for (const [name, { help, labels = [] }] of Object.entries(COUNTERS)) {
      if (labels.length > 1) {
        this.counters.set(name, new Counter({ name, help, labelNames: labels, registers: [this.registry] }))
        continue
      }
      const totals = new CounterTotals(name, labels[0])
      this.totals.set(name, totals)
      this.counters.set(name, new Counter({ name, help, labelNames: labels, registers: [this.registry], collect() { totals.publish(this) } }))
    }
    // Observed two or three times per update: BucketHistogram, not
    // prom-client's Histogram (see there), written out the same way.
    this.updateStored = new BucketHistogram(
      'kai_relay_update_stored_seconds',
      'Time from an update\'s arrival to its storage (checks, queueing behind the room\'s earlier work, and the commit)',
      LATENCY_BUCKETS,
    ).register(this.registry).of()
    this.updateRelayed = new BucketHistogram(
      'kai_relay_update_relayed_seconds',
      'Time from an update\'s arrival until it was handed to the room\'s other sockets (after storage)',
      LATENCY_BUCKETS,
    ).register(this.registry).of()
    const storageCommit = new BucketHistogram(
      'kai_relay_storage_commit_seconds',
      'Time storage took to commit, by operation (append an update, replace a room\'s records in a compaction); for an append, until the relay saw it committed, in the room\'s order',
      LATENCY_BUCKETS,
      { name: 'op', values: ['append', 'replace'] satisfies StorageOp[] },
    ).register(this.registry)
    this.storageCommit = { append: storageCommit.of('append'), replace: storageCommit.of('replace') }
    processMetrics()
  }

  inc(name: string, labels?: Labels, by = 1): void {
    const totals = this.totals.get(name)
    if (totals) return totals.add(labels, by)
    const counter = this.counters.get(name)
    if (!counter) throw new Error(`unknown metric ${name}`)
    if (labels) counter.inc(labels, by)
    else counter.inc(by)
  }

  counter(name: string, labelValue?: string | number): CounterSeries {
    const totals = this.totals.get(name)
    if (!totals) throw new Error(`${name} is not a counter with at most one label`)
    return totals.series(labelValue)
  }

  async get(name: string, labels?: Labels): Promise<number> {
    const counter = this.counters.get(name)
    if (!counter) return 0
    const want = Object.entries(labels ?? {}).map(([k, v]) => [k, String(v)] as const)
    const { values } = await counter.get()
    const found = values.find((v) => want.length === Object.keys(v.labels).length && want.every(([k, x]) => String(v.labels[k]) === x))
    return found?.value ?? 0
  }

  gauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read())
      },
    })
  }

  clock(): number {
    return performance.now()
  }

  stored(arrived: number): void {
    this.updateStored.observe((performance.now() - arrived) / 1000)
  }

  relayed(arrived: number): void {
    this.updateRelayed.observe((performance.now() - arrived) / 1000)
  }

  committed(op: StorageOp, asked: number): void {
    this.storageCommit[op].observe((performance.now() - asked) / 1000)
  }

  timed<T>(op: StorageOp, run: () => Promise<T>): Promise<T> {
    const started = performance.now()
    return run().then((result) => {
      this.storageCommit[op].observe((performance.now() - started) / 1000)
      return result
    })
  }

  readonly contentType = this.registry.contentType

  /** The Prometheus text format: this relay's metrics, then the process's. */
  async render(): Promise<string> {
    return (await this.registry.metrics()) + (await processMetrics().metrics())
  }
}
