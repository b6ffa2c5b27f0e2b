import type { CounterSeries } from './counter-totals'
import type { Labels, Metrics, StorageOp } from './metrics'

const NOTHING: CounterSeries = { add() {} }

/**
 * Metrics that record nothing (`kai-relay --metrics off`): no registry, no
 * process observers, no timestamps taken per update. It exists so that
 * `pnpm bench relay` can weigh what PromMetrics costs (issue 18's budget).
 */
export class NoMetrics implements Metrics {
  readonly enabled = false
  readonly contentType = 'text/plain'

  inc(_name: string, _labels?: Labels, _by?: number): void {}

  counter(_name: string, _labelValue?: string | number): CounterSeries {
    return NOTHING
  }

  get(_name: string, _labels?: Labels): Promise<number> {
    return Promise.resolve(0)
  }

  gauge(_name: string, _help: string, _read: () => number): void {}

  clock(): undefined {
    return undefined
  }

  stored(_arrived: number): void {}

  relayed(_arrived: number): void {}

  committed(_op: StorageOp, _asked: number): void {}

  timed<T>(_op: StorageOp, run: () => Promise<T>): Promise<T> {
    return run()
  }

  render(): Promise<string> {
    return Promise.resolve('')
  }
}
