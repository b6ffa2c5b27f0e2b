import type { Labels, Metrics, StorageOp } from './metrics'

/**
 * Metrics that record nothing (`kai-relay --metrics off`): no registry, no
 * process observers, no timestamps taken per update. It exists so that
 * `pnpm bench relay` can weigh what PromMetrics costs (issue 18's budget).
 */
export class NoMetrics implements Metrics {
  readonly enabled = false
  readonly contentType = 'text/plain'

  inc(_name: string, _labels?: Labels, _by?: number): void {}

  get(_name: string, _labels?: Labels): Promise<number> {
    return Promise.resolve(0)
  }

  gauge(_name: string, _help: string, _read: () => number): void {}

  clock(): undefined {
    return undefined
  }

  stored(_arrived: number): void {}

  relayed(_arrived: number): void {}

  timed<T>(_op: StorageOp, run: () => Promise<T>): Promise<T> {
    return run()
  }

  render(): Promise<string> {
    return Promise.resolve('')
  }
}
