import { afterEach, describe, expect, it } from 'vitest'
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DataDir } from './data-dir'
import { DroppedOwnFiles } from './dropped-own-files'

const roots: string[] = []
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true })
})

function dataDir(): DataDir {
  const root = mkdtempSync(join(tmpdir(), 'kai-dropped-'))
  roots.push(root)
  const dir = new DataDir(join(root, 'data'))
  dir.prepare()
  return dir
}

describe("the daemon's store of dropped own envelopes", () => {
  it('keeps envelopes per session across instances, in a 0600 file removed once it holds none', async () => {
    const dir = dataDir()
    const first = new DroppedOwnFiles(dir)
    await first.keep('s1', 'a', new Uint8Array([1, 2, 3]))
    await first.keep('s1', 'b', new Uint8Array([4]))
    await first.keep('s2', 'a', new Uint8Array([5]))
    const file = dir.sessionDroppedFile('s1')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    // A restart: a new instance reads what the last one wrote.
    const again = new DroppedOwnFiles(dir)
    expect(await again.load('s1')).toEqual([new Uint8Array([1, 2, 3]), new Uint8Array([4])])
    await again.forget('s1', 'a')
    await again.forget('s1', 'unknown')
    expect(await again.load('s1')).toEqual([new Uint8Array([4])])
    await again.forget('s1', 'b')
    expect(existsSync(file)).toBe(false)
    expect(await again.load('s1')).toEqual([])
    expect(await again.load('s2')).toEqual([new Uint8Array([5])])
    again.remove('s2')
    expect(await again.load('s2')).toEqual([])
  })

  it('refuses a file that is not its own with malformed, and a session id that is not one with invalid_input', async () => {
    const dir = dataDir()
    const store = new DroppedOwnFiles(dir)
    writeFileSync(dir.sessionDroppedFile('s1'), '{"envelopes": 3}', { mode: 0o600 })
    await expect(store.load('s1')).rejects.toMatchObject({ code: 'malformed' })
    await expect(store.keep('s1', 'a', new Uint8Array([1]))).rejects.toMatchObject({ code: 'malformed' })
    await expect(store.load('../s1')).rejects.toMatchObject({ code: 'invalid_input' })
  })
})
