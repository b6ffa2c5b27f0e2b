import type { DroppedOwnStore } from '../dropped-own'

/** A device's disk for what DroppedOwn keeps, in memory: it outlives the engines a test opens on it. */
export class MemoryDroppedOwnStore implements DroppedOwnStore {
  private readonly sessions = new Map<string, Map<string, Uint8Array>>()

  load(sessionId: string): Promise<Uint8Array[]> {
    return Promise.resolve([...(this.sessions.get(sessionId)?.values() ?? [])])
  }

  keep(sessionId: string, key: string, envelope: Uint8Array): Promise<void> {
    let entries = this.sessions.get(sessionId)
    if (!entries) this.sessions.set(sessionId, (entries = new Map()))
    entries.set(key, envelope.slice())
    return Promise.resolve()
  }

  forget(sessionId: string, key: string): Promise<void> {
    this.sessions.get(sessionId)?.delete(key)
    return Promise.resolve()
  }
}
