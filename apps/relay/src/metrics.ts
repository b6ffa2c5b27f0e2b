// Counters and gauges in the Prometheus text format, without a client
// library: the relay exports a dozen series and needs no histograms.

type Labels = Record<string, string | number>

interface Series {
  help: string
  type: 'counter' | 'gauge'
  values: Map<string, number>
}

// Label sets repeat (a message type, a close code): their rendered key is
// remembered by a cheap id, so a counter on the per-message path does not
// sort and escape strings each time. Bounded: the relay's labels are few.
const labelKeys = new Map<string, string>()

function labelKey(labels: Labels | undefined): string {
  if (!labels) return ''
  let id = ''
  for (const k in labels) id += `${k}\u0000${String(labels[k])}\u0001`
  let key = labelKeys.get(id)
  if (key === undefined) {
    key = renderLabels(labels)
    if (labelKeys.size < 1024) labelKeys.set(id, key)
  }
  return key
}

function renderLabels(labels: Labels): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${String(labels[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
  return `{${parts.join(',')}}`
}

export class Metrics {
  private readonly series = new Map<string, Series>()
  private readonly gauges = new Map<string, () => number>()

  constructor() {
    this.define('kai_relay_connections_total', 'counter', 'WebSocket connections accepted after authentication')
    this.define('kai_relay_messages_total', 'counter', 'Protocol messages received, by type')
    this.define('kai_relay_bytes_received_total', 'counter', 'Bytes received in WebSocket frames')
    this.define('kai_relay_bytes_sent_total', 'counter', 'Bytes sent in WebSocket frames')
    this.define('kai_relay_rejections_total', 'counter', 'Connections closed or updates refused, by close code')
    this.define('kai_relay_updates_stored_total', 'counter', 'Updates written to storage')
    this.define('kai_relay_updates_deferred_total', 'counter', 'Updates held until what they depend on arrived')
    this.define('kai_relay_copies_dropped_total', 'counter', 'Log items dropped as copies of an envelope already in the log')
    this.define('kai_relay_awareness_dropped_total', 'counter', 'Awareness updates that named client ids another connection introduced (those states were dropped)')
    this.define('kai_relay_storage_errors_total', 'counter', 'Storage operations that failed')
    this.define('kai_relay_stored_updates_quarantined_total', 'counter', 'Stored updates that do not decode, skipped when their room loaded and kept in storage')
    this.define('kai_relay_storage_reloads_total', 'counter', 'Loaded rooms reloaded from storage because updates from other relay processes may have been missed')
    this.define('kai_relay_handoff_requests_total', 'counter', 'POST /session/:id/handoff and /resume requests, by action and outcome code')
  }

  private define(name: string, type: Series['type'], help: string): void {
    this.series.set(name, { help, type, values: new Map() })
  }

  inc(name: string, labels?: Labels, by = 1): void {
    const s = this.series.get(name)
    if (!s) throw new Error(`unknown metric ${name}`)
    const key = labelKey(labels)
    s.values.set(key, (s.values.get(key) ?? 0) + by)
  }

  get(name: string, labels?: Labels): number {
    return this.series.get(name)?.values.get(labelKey(labels)) ?? 0
  }

  /** A gauge read when scraped. */
  gauge(name: string, help: string, read: () => number): void {
    this.define(name, 'gauge', help)
    this.gauges.set(name, read)
  }

  render(): string {
    const lines: string[] = []
    for (const [name, s] of this.series) {
      lines.push(`# HELP ${name} ${s.help}`, `# TYPE ${name} ${s.type}`)
      const read = this.gauges.get(name)
      if (read) lines.push(`${name} ${read()}`)
      else if (s.values.size === 0) lines.push(`${name} 0`)
      else for (const [labels, v] of s.values) lines.push(`${name}${labels} ${v}`)
    }
    return lines.join('\n') + '\n'
  }
}
