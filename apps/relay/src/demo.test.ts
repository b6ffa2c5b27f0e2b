import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { LevelUpdateStore } from '@kai-sync/storage'
import { RUN_TS, spawnChild } from '@kai-sync/process-harness'

// `pnpm start` runs this demo on the same data directory every time. Its
// device key dies with the process, so an old demo room is dead weight.

const DEMO = join(dirname(fileURLToPath(import.meta.url)), 'demo.ts')
const dataDir = mkdtempSync(join(tmpdir(), 'kai-demo-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

/** Runs the demo until it has written its session, stops it, and returns that session's id. */
async function runDemo(): Promise<string> {
  const demo = spawnChild(process.execPath, [...RUN_TS, DEMO, '--port', '0', '--data-dir', dataDir])
  const line = await demo.waitFor((l) => l.includes('"demo session"'), 60_000, 'the demo session')
  // 0: it stopped cleanly (stored its rooms), whenever the signal came.
  expect(await demo.stop()).toBe(0)
  return JSON.parse(line).session as string
}

describe('the demo of pnpm start', () => {
  it('removes the last demo session from the store when it starts again, so repeated starts keep one demo room', async () => {
    const first = await runDemo()
    const second = await runDemo()
    expect(second).not.toBe(first)
    const store = await LevelUpdateStore.open(dataDir)
    try {
      expect(await store.rooms()).toEqual([second])
    } finally {
      await store.close()
    }
  }, 150_000)
})
