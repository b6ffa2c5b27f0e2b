import { ClassicLevel } from 'classic-level'
import * as z from 'zod/mini'
import { KaiError } from '@kai-sync/model'
import type { HandoffRecord, HandoffStore } from '@kai-sync/handoff/registry'
import { KEEP_AFTER_EXPIRY_MS, StoredHandoffSchema } from './handoff-record'

// Handoff tokens filed in a LevelDB of their own beside the relay's store
// (<data dir>/handoffs), so a token burned before a restart is still burned
// after it: a used link answers `already_used`, not "never registered".
//
//   t:<token id>               -> the record as JSON (with usedBy/box once claimed)
//   u:<session> <device> <id>  -> '' (the tokens a device resumed, for enrollee)
//
// LevelDB locks its directory to one process, so claims are made atomic by
// running them one at a time here; the claim and its index entry are one
// batch, written before the resume is answered.

const RecordSchema = z.extend(StoredHandoffSchema, {
  usedBy: z.optional(z.string()),
  box: z.optional(z.string()),
})

const tokenKey = (id: string) => `t:${id}`
const usedPrefix = (sessionId: string, device: string) => `u:${encodeURIComponent(sessionId)} ${device} `

export class LevelHandoffStore implements HandoffStore {
  /** Claims, one after another: what makes a token single-use in this process. */
  private claims: Promise<unknown> = Promise.resolve()

  private constructor(private readonly db: ClassicLevel<string, string>) {}

  static async open(directory: string): Promise<LevelHandoffStore> {
    const db = new ClassicLevel<string, string>(directory, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
    try {
      await db.open()
    } catch (cause) {
      throw new KaiError('unavailable', `cannot open the handoff store in ${directory}`, { cause })
    }
    return new LevelHandoffStore(db)
  }

  async put(record: HandoffRecord): Promise<void> {
    await this.db.put(tokenKey(record.tokenId), JSON.stringify(record), { sync: true })
  }

  async get(tokenId: string): Promise<HandoffRecord | undefined> {
    return parse(await this.db.get(tokenKey(tokenId)))
  }

  claim(tokenId: string, device: string, box: string): Promise<HandoffRecord | undefined> {
    const run = this.claims.then(async () => {
      const before = await this.get(tokenId)
      if (!before || before.usedBy) return before
      const used: HandoffRecord = { ...before, usedBy: device, box }
      // Synced: a claim acknowledged to the target survives a crash right after.
      await this.db.batch(
        [
          { type: 'put', key: tokenKey(tokenId), value: JSON.stringify(used) },
          { type: 'put', key: usedPrefix(before.sessionId, device) + tokenId, value: '' },
        ],
        { sync: true },
      )
      return before
    })
    this.claims = run.catch(() => {})
    return run
  }

  async usedBy(sessionId: string, device: string): Promise<HandoffRecord[]> {
    const prefix = usedPrefix(sessionId, device)
    const out: HandoffRecord[] = []
    for await (const key of this.db.keys({ gte: prefix, lt: prefix + '\xff' })) {
      const r = await this.get(key.slice(prefix.length))
      if (r && r.sessionId === sessionId && r.usedBy === device) out.push(r)
    }
    return out
  }

  async sweep(now: number): Promise<void> {
    // Used tokens are kept a day past expiry so a replay still finds them burned.
    const stale: Array<{ type: 'del'; key: string }> = []
    for await (const [key, value] of this.db.iterator({ gte: 't:', lt: 't:\xff' })) {
      const r = parse(value)
      if (r && r.expiresAt + KEEP_AFTER_EXPIRY_MS >= now) continue
      stale.push({ type: 'del', key })
      if (r?.usedBy) stale.push({ type: 'del', key: usedPrefix(r.sessionId, r.usedBy) + r.tokenId })
    }
    if (stale.length > 0) await this.db.batch(stale)
  }

  close(): Promise<void> {
    return this.db.close()
  }
}

function parse(value: string | undefined): HandoffRecord | undefined {
  if (value === undefined) return undefined
  try {
    const r = RecordSchema.parse(JSON.parse(value))
    const out: HandoffRecord = { tokenId: r.tokenId, sessionId: r.sessionId, issuer: r.issuer, transfer: r.transfer, expiresAt: r.expiresAt }
    if (r.volatile !== undefined) out.volatile = r.volatile
    if (r.usedBy !== undefined) out.usedBy = r.usedBy
    if (r.box !== undefined) out.box = r.box
    return out
  } catch {
    return undefined // corrupt: treated as never registered
  }
}
