import type { Redis } from 'ioredis'
import type * as z from 'zod/mini'
import type { HandoffRecord, HandoffStore } from '@kai-sync/handoff/registry'
import { KEEP_AFTER_EXPIRY_MS, StoredHandoffSchema } from './handoff-record'

// Handoff tokens filed in Redis, so a token registered through one relay
// process is burned by whichever process the target reaches. Each token is
// a hash: `record` (what the source registered, JSON), and `usedBy`/`box`
// once a target resumed. `claim` sets those in one Lua script, which Redis
// runs atomically: of two targets racing through two relays, one wins.
// Keys expire a day after the token does, so a replay still finds it burned.

const PREFIX = 'kai-relay:handoff:'

// KEYS[1] the token's hash, KEYS[2] the (session, device) index; ARGV: device, box, token id, index TTL (ms).
const CLAIM = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local before = redis.call('HMGET', KEYS[1], 'record', 'usedBy', 'box')
if not before[2] then
  redis.call('HSET', KEYS[1], 'usedBy', ARGV[1], 'box', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return before
`

export class RedisHandoffStore implements HandoffStore {
  constructor(private readonly redis: Redis) {}

  private static tokenKey(tokenId: string): string {
    return `${PREFIX}token:${tokenId}`
  }

  private static usedKey(sessionId: string, device: string): string {
    return `${PREFIX}used:${sessionId}:${device}`
  }

  async put(record: HandoffRecord): Promise<void> {
    const { usedBy: _u, box: _b, ...registered } = record
    const key = RedisHandoffStore.tokenKey(record.tokenId)
    await this.redis.multi().hset(key, 'record', JSON.stringify(registered)).pexpireat(key, record.expiresAt + KEEP_AFTER_EXPIRY_MS).exec()
  }

  async get(tokenId: string): Promise<HandoffRecord | undefined> {
    const [record, usedBy, box] = await this.redis.hmget(RedisHandoffStore.tokenKey(tokenId), 'record', 'usedBy', 'box')
    return toRecord(record ?? null, usedBy ?? null, box ?? null)
  }

  async claim(tokenId: string, device: string, box: string): Promise<HandoffRecord | undefined> {
    const current = await this.get(tokenId)
    if (!current) return undefined
    const ttl = Math.max(1, current.expiresAt + KEEP_AFTER_EXPIRY_MS - Date.now())
    const before = (await this.redis.eval(
      CLAIM,
      2,
      RedisHandoffStore.tokenKey(tokenId),
      RedisHandoffStore.usedKey(current.sessionId, device),
      device,
      box,
      tokenId,
      String(ttl),
    )) as [string | null, string | null, string | null] | null
    return before ? toRecord(...before) : undefined
  }

  async usedBy(sessionId: string, device: string): Promise<HandoffRecord[]> {
    const ids = await this.redis.smembers(RedisHandoffStore.usedKey(sessionId, device))
    const records = await Promise.all(ids.map((id) => this.get(id)))
    return records.filter((r): r is HandoffRecord => r !== undefined && r.sessionId === sessionId && r.usedBy === device)
  }

  async sweep(): Promise<void> {
    // Redis expires the keys itself.
  }
}

function toRecord(record: string | null, usedBy: string | null, box: string | null): HandoffRecord | undefined {
  if (record === null) return undefined
  let parsed: z.infer<typeof StoredHandoffSchema>
  try {
    parsed = StoredHandoffSchema.parse(JSON.parse(record))
  } catch {
    return undefined // not ours, or corrupt: treated as never registered
  }
  const out: HandoffRecord = { ...parsed }
  if (usedBy !== null) out.usedBy = usedBy
  if (box !== null) out.box = box
  return out
}
