import { afterEach, describe, expect, it } from 'vitest'
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WebCryptoDeviceKey, toBase64Url } from '@kai-sync/crypto'
import { RUN_TS, spawnChild } from '@kai-sync/process-harness'
import { KAI_CLI, spawnDaemon, type DaemonProcess } from './testing'

const daemons: DaemonProcess[] = []
afterEach(() => {
  for (const d of daemons.splice(0)) d.cleanup()
})

function modes(root: string, dir = root, out: Record<string, number> = {}): Record<string, number> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (name === 'store') {
      out['store/'] = statSync(path).mode & 0o777
      continue // LevelDB's own files: ciphertext, inside a 0700 directory
    }
    const stat = statSync(path)
    out[path.slice(root.length + 1) + (stat.isDirectory() ? '/' : '')] = stat.mode & 0o777
    if (stat.isDirectory()) modes(root, path, out)
  }
  return out
}

describe('the data directory', () => {
  it('holds keys, token and session files readable by their owner only, whatever the umask', async () => {
    const daemon = await spawnDaemon()
    daemons.push(daemon)
    const sessionId = (await daemon.api('POST', '/sessions', { agent_id: 'a', user_id: 'u' })).json.session_id as string
    const client = await WebCryptoDeviceKey.generate()
    await daemon.api('POST', '/clients', { public_key: toBase64Url(client.publicKey), label: 'c' })
    const found = modes(daemon.dataDir)
    expect(Object.keys(found).sort()).toEqual(
      ['box.json', 'clients.json', 'daemon.json', 'device.json', 'keys/', `keys/${sessionId}.json`, 'sessions/', `sessions/${sessionId}.json`, 'store/', 'token'].sort(),
    )
    for (const [path, mode] of Object.entries(found)) expect(mode, path).toBe(path.endsWith('/') ? 0o700 : 0o600)
    expect(statSync(daemon.dataDir).mode & 0o777).toBe(0o700)
    // Not a terminal: the first start names the token's file but never prints the token.
    expect(daemon.output().join('\n')).toContain(`token  written to ${join(daemon.dataDir, 'token')}`)
    expect(daemon.output().join('\n')).not.toContain(daemon.token)
  })

  it('refuses to start when a key file is readable by others, and says how to fix it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kai-daemon-'))
    try {
      const daemon = await spawnDaemon({ dataDir: join(root, 'data') })
      await daemon.stop()
      chmodSync(join(daemon.dataDir, 'device.json'), 0o644)
      const again = spawnChild(process.execPath, [...RUN_TS, KAI_CLI, '--data-dir', daemon.dataDir, 'daemon', '--port', '0'])
      expect(await again.exited).toBe(1)
      expect(again.stderr.join('\n')).toContain(`forbidden: ${join(daemon.dataDir, 'device.json')} is readable by other users (mode 644); run: chmod 600`)
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })
})
