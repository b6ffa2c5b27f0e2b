// Shared helpers for the benchmarks: timing, medians, and one table format,
// so every benchmark prints its figures beside the baseline of the same run.

/** The middle value; for an even count the mean of the two middle ones (the lower one alone would favour whichever side a budget is on). */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const sorted = [...xs].sort((a, b) => a - b)
  const at = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[at]!
}

/** Milliseconds since an arbitrary origin, sub-microsecond resolution. */
export function now(): number {
  return performance.now()
}

/** Milliseconds on one clock shared by every process on the machine (`performance.timeOrigin + now()`), for times taken in two processes. */
export function clock(): number {
  return performance.timeOrigin + performance.now()
}

/** Runs `fn` `runs` times (after `warmup` runs) and returns each run's duration in ms. */
export async function timeRuns(runs: number, fn: () => unknown, warmup = Math.min(3, runs)): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn()
  const out: number[] = []
  for (let i = 0; i < runs; i++) {
    const t = now()
    await fn()
    out.push(now() - t)
  }
  return out
}

export function fmt(value: number, unit: 'µs' | 'ms' | '/s' | 'x' | 'B' | 'MB' | ''): string {
  if (!Number.isFinite(value)) return 'n/a'
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2
  return `${value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 })}${unit ? ` ${unit}` : ''}`
}

/** Prints a titled table: the first column names a row, the rest are figures. */
export function table(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
  console.log(`\n### ${title}\n`)
  console.log(line(header))
  console.log(`|${widths.map((w, i) => (i === 0 ? ':' : '-') + '-'.repeat(w) + (i === 0 ? '-' : ':')).join('|')}|`)
  for (const r of rows) console.log(line(r))
}

/** A goal line: what was measured against what was promised. */
export function goal(what: string, ok: boolean, detail: string): void {
  console.log(`\n${ok ? 'MET' : 'MISSED'}: ${what} (${detail})`)
}
