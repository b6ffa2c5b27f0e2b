import { rmSync } from 'node:fs'
import { z } from 'zod'
import { KaiError, parseInput } from '@kai-sync/model'
import { fromBase64Url, toBase64Url } from '@kai-sync/crypto'
import type { DroppedOwnStore } from '@kai-sync/engine'
import { readPrivateFile, writePrivateFile, type DataDir } from './data-dir'

const DroppedFileSchema = z.object({
  type: z.literal('kai-sync/dropped-own'),
  version: z.literal(1),
  envelopes: z.record(z.string(), z.string().regex(/^[A-Za-z0-9_-]+$/)),
})

/**
 * The daemon's DroppedOwnStore: per session, `sessions/<id>.dropped.json`
 * (0600), the envelopes of this device the session's log dropped before it
 * re-sealed them, by key, base64url. Ciphertext, and rarely more than a
 * few envelopes: the file is rewritten whole (atomically) on each change,
 * and removed once it holds none.
 */
export class DroppedOwnFiles implements DroppedOwnStore {
  constructor(private readonly dir: DataDir) {}

  load(sessionId: string): Promise<Uint8Array[]> {
    return attempt(() => {
      const path = this.dir.sessionDroppedFile(sessionId)
      return Object.values(this.read(sessionId)).map((text) => {
        const bytes = fromBase64Url(text)
        if (!bytes) throw new KaiError('malformed', `${path} holds an envelope that is not base64url; move the file away to start afresh`)
        return bytes
      })
    })
  }

  keep(sessionId: string, key: string, envelope: Uint8Array): Promise<void> {
    return attempt(() => {
      const all = this.read(sessionId)
      all[key] = toBase64Url(envelope)
      this.write(sessionId, all)
    })
  }

  forget(sessionId: string, key: string): Promise<void> {
    return attempt(() => {
      const all = this.read(sessionId)
      if (!(key in all)) return
      delete all[key]
      this.write(sessionId, all)
    })
  }

  /** Deletes what is kept for the session (it leaves this device). */
  remove(sessionId: string): void {
    rmSync(this.dir.sessionDroppedFile(sessionId), { force: true })
  }

  private read(sessionId: string): Record<string, string> {
    const path = this.dir.sessionDroppedFile(sessionId)
    const text = readPrivateFile(path)
    if (text === null) return {}
    try {
      return parseInput(DroppedFileSchema, JSON.parse(text), path).envelopes
    } catch (e) {
      throw new KaiError('malformed', `${path} is not a kai-sync file of dropped envelopes; move it away to start afresh`, { cause: e })
    }
  }

  private write(sessionId: string, envelopes: Record<string, string>): void {
    const path = this.dir.sessionDroppedFile(sessionId)
    if (Object.keys(envelopes).length === 0) rmSync(path, { force: true })
    else writePrivateFile(path, JSON.stringify({ type: 'kai-sync/dropped-own', version: 1, envelopes }) + '\n')
  }
}

/** Runs synchronous file work as a promise, so a failure is a rejection, never a throw. */
function attempt<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn())
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)))
  }
}
