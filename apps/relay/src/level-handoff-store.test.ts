import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { HandoffRecord } from '@kai-sync/handoff/registry'
import { LevelHandoffStore } from './level-handoff-store'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function record(id: string, expiresAt = Date.now() + 60_000): HandoffRecord {
  return { tokenId: id, sessionId: 'room', issuer: 'issuer', transfer: 'mirror', expiresAt, volatile: 'c2VhbGVk' }
}

describe('LevelHandoffStore', () => {
  it('of many claims at once, one wins; the claim and its index survive a reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kai-handoffs-'))
    dirs.push(dir)
    const store = await LevelHandoffStore.open(dir)
    await store.put(record('t1'))
    const befores = await Promise.all(Array.from({ length: 8 }, (_, i) => store.claim('t1', `device-${i}`, `box-${i}`)))
    const winners = befores.filter((b) => b && !b.usedBy)
    expect(winners).toHaveLength(1)
    const used = await store.get('t1')
    expect(used?.usedBy).toMatch(/^device-\d$/)
    await store.close()

    const reopened = await LevelHandoffStore.open(dir)
    expect(await reopened.get('t1')).toEqual(used)
    expect((await reopened.usedBy('room', used!.usedBy!)).map((r) => r.tokenId)).toEqual(['t1'])
    expect(await reopened.claim('t-none', 'd', 'b')).toBeUndefined()
    await reopened.close()
  })

  it('sweeps tokens a day past their expiry, and their index entries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kai-handoffs-'))
    dirs.push(dir)
    const store = await LevelHandoffStore.open(dir)
    const now = Date.now()
    await store.put(record('old', now - 25 * 3600_000))
    await store.put(record('recent', now - 3600_000))
    await store.claim('old', 'd', 'b')
    await store.sweep(now)
    expect(await store.get('old')).toBeUndefined()
    expect(await store.usedBy('room', 'd')).toEqual([])
    expect((await store.get('recent'))?.tokenId).toBe('recent')
    await store.close()
  })
})
