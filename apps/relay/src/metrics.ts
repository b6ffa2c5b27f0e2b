import { performance } from 'node:perf_hooks'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'

// The relay's metrics on prom-client, in a registry per relay (tests run
// several relays in one process), plus the process's own metrics (CPU,
// memory, event loop lag, GC) in one registry per process: they describe
// the process, and collecting them twice would run two sets of observers.

type Labels = Record<string, string | number>

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

export class Metrics {
  readonly registry = new Registry()
  private readonly counters = new Map<string, Counter>()
  private readonly updateStored: Histogram
  private readonly updateRelayed: Histogram
  private readonly storageCommit: Histogram<'op'>

  constructor() {
    for (const [name, { help, labels }] of Object.entries(COUNTERS)) {
      this.counters.set(name, new Counter({ name, help, labelNames: labels ?? [], registers: [this.registry] }))
    }
    this.updateStored = new Histogram({
      name: 'kai_relay_update_stored_seconds',
      help: 'Time from an update\'s arrival to its storage (checks, queueing behind the room\'s earlier work, and the commit)',
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    })
    this.updateRelayed = new Histogram({
      name: 'kai_relay_update_relayed_seconds',
      help: 'Time from an update\'s arrival until it was handed to the room\'s other sockets (after storage)',
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    })
    this.storageCommit = new Histogram({
      name: 'kai_relay_storage_commit_seconds',
      help: 'Time storage took to commit, by operation (append an update, replace a room\'s records in a compaction)',
      labelNames: ['op'],
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    })
    processMetrics()
  }

  inc(name: string, labels?: Labels, by = 1): void {
    const counter = this.counters.get(name)
    if (!counter) throw new Error(`unknown metric ${name}`)
    if (labels) counter.inc(labels, by)
    else counter.inc(by)
  }

  /** A counter's value (tests read it). */
  async get(name: string, labels?: Labels): Promise<number> {
    const counter = this.counters.get(name)
    if (!counter) return 0
    const want = Object.entries(labels ?? {}).map(([k, v]) => [k, String(v)] as const)
    const { values } = await counter.get()
    const found = values.find((v) => want.length === Object.keys(v.labels).length && want.every(([k, x]) => String(v.labels[k]) === x))
    return found?.value ?? 0
  }

  /** A gauge read when scraped. */
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

  /** An update that arrived at `arrived` (performance.now()) is stored. */
  stored(arrived: number): void {
    this.updateStored.observe((performance.now() - arrived) / 1000)
  }

  /** An update that arrived at `arrived` was handed to the room's other sockets. */
  relayed(arrived: number): void {
    this.updateRelayed.observe((performance.now() - arrived) / 1000)
  }

  /** A storage operation that started at `started` (performance.now()) committed. */
  committed(op: StorageOp, started: number): void {
    this.storageCommit.observe({ op }, (performance.now() - started) / 1000)
  }

  readonly contentType = this.registry.contentType

  /** The Prometheus text format: this relay's metrics, then the process's. */
  async render(): Promise<string> {
    return (await this.registry.metrics()) + (await processMetrics().metrics())
  }
}
