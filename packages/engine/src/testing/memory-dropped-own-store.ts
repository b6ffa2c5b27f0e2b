import type { DroppedOwnStore } from '../dropped-own'

/** A device's disk for what DroppedOwn keeps, in memory: it outlives the engines a test opens on it. */
export class MemoryDroppedOwnStore implements DroppedOwnStore {
  private readonly entries = new Map<string, Uint8Array>()

  load(): Promise<Uint8Array[]> {
    return Promise.resolve([...this.entries.values()])
  }

  keep(key: string, envelope: Uint8Array): Promise<void> {
    this.entries.set(key, envelope.slice())
    return Promise.resolve()
  }

  forget(key: string): Promise<void> {
    this.entries.delete(key)
    return Promise.resolve()
  }
}
