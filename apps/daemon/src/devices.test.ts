import { existsSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { capabilityToParam, signCapability } from '@kai-sync/crypto/capability'
import { WireDoc } from '@kai-sync/engine'
import { connectRelay } from '@kai-sync/providers'
import { DataDir } from './data-dir'
import { loadOrCreateDeviceKeys, loadSessionKeys } from './key-files'
import { eventually, kai, runCli, spawnDaemon, spawnKaiRelay, type DaemonProcess, type TestRelay } from './testing'

// Devices a person can manage, through the real relay (kai-relay) and real
// daemons: list them, remove one, cancel an invite, leave a session. Each
// refusal is tried the way a member who should not would try it.

const cleanups: Array<() => void> = []
afterAll(() => {
  for (const c of cleanups.reverse()) c()
})

interface DeviceRow { device: string; role: string; label: string; this_device: boolean; mode?: string; last_seen?: number }
interface InviteRow { invite: string; transfer: string }
type DeviceList = { devices: DeviceRow[]; invites: InviteRow[] }

const linkOf = (printed: string): string => {
  const link = printed.split('\n').find((l) => l.startsWith('kai://resume#kai='))
  if (!link) throw new Error(`no resume link in:\n${printed}`)
  return link
}
const devicesOn = async (d: DaemonProcess, sessionId: string): Promise<DeviceList> => JSON.parse(await kai(d, '--json', 'devices', sessionId)) as DeviceList
const contents = (r: { messages?: Array<{ content: string }> }) => (r.messages ?? []).map((m) => m.content)

describe('devices a person can manage', () => {
  let relay: TestRelay
  let owner: DaemonProcess
  let other: DaemonProcess

  /** A session made on the owner and mirrored onto `to` (link on stdin); returns its id and the spent invite's key. */
  async function mirrored(to: DaemonProcess, label: string): Promise<{ sessionId: string; spent: string }> {
    const sessionId = (await kai(owner, 'create')).trim()
    await kai(owner, 'append', sessionId, 'before')
    const link = linkOf(await kai(owner, 'handoff', sessionId, '--to', 'headless', '--type', 'mirror'))
    const pending = (await devicesOn(owner, sessionId)).invites
    expect(pending).toEqual([expect.objectContaining({ transfer: 'mirror' })])
    const resumed = await runCli(to.dataDir, ['resume', '-', '--label', label], { stdin: `${link}\n` })
    expect(resumed.code, resumed.stderr).toBe(0)
    return { sessionId, spent: pending[0]!.invite }
  }

  it('lists devices (this one marked, last seen) and removes a mirrored daemon: it reads nothing new and the relay refuses it', async () => {
    relay = await spawnKaiRelay()
    cleanups.push(() => relay.cleanup())
    ;[owner, other] = await Promise.all([spawnDaemon({ relayUrl: relay.url, label: 'laptop' }), spawnDaemon({ relayUrl: relay.url, label: 'server' })])
    cleanups.push(() => owner.cleanup(), () => other.cleanup())
    const { sessionId } = await mirrored(other, 'server')
    await kai(other, 'append', sessionId, 'from the server')

    const listed = await eventually(() => devicesOn(owner, sessionId), (l) => l.devices.some((d) => d.label === 'server' && d.last_seen !== undefined), 'the owner to see the server write')
    const me = listed.devices.find((d) => d.this_device)!
    const them = listed.devices.find((d) => d.label === 'server')!
    expect(me).toMatchObject({ label: 'laptop', role: 'owner', mode: 'headless', this_device: true })
    expect(them).toMatchObject({ role: 'writer', mode: 'headless', this_device: false })
    expect(listed.devices.filter((d) => d.this_device)).toHaveLength(1)
    expect(listed.invites).toEqual([]) // the one link was spent
    const readable = await kai(owner, 'devices', sessionId)
    expect(readable).toMatch(/laptop\s+headless\s+owner\s+\S+\s+\(this device\)/)
    expect(readable).toMatch(/server\s+headless\s+writer/)
    expect(readable).toContain('no pending invites')

    // What must be refused, and change nothing.
    const path = (id: string) => `/session/${sessionId}/devices/${encodeURIComponent(id)}`
    const refusals: Array<[DaemonProcess, string, number, string]> = [
      [other, me.device, 403, 'forbidden'], // a writer removing the owner
      [other, them.device, 400, 'invalid_input'], // removing yourself: that is leave
      [owner, me.device, 400, 'invalid_input'], // the owner removing itself
      [owner, 'not-a-key', 400, 'invalid_input'],
      [owner, 'A'.repeat(43), 404, 'not_found'],
    ]
    for (const [d, id, status, code] of refusals) {
      const r = await d.api('DELETE', path(id))
      expect([r.status, r.json.error?.code], `${id} on ${d === owner ? 'owner' : 'other'}`).toEqual([status, code])
    }
    expect((await owner.api('DELETE', `/session/nope/devices/${them.device}`)).json.error.code).toBe('not_found')
    expect((await devicesOn(owner, sessionId)).devices).toEqual(listed.devices)

    const removed = await runCli(owner.dataDir, ['device', 'remove', sessionId, them.device])
    expect(removed.code, removed.stderr).toBe(0)
    expect(removed.stdout).toContain('removed')
    expect((await devicesOn(owner, sessionId)).devices.find((d) => d.device === them.device)).toMatchObject({ role: 'removed' })
    const twice = await owner.api('DELETE', path(them.device))
    expect([twice.status, twice.json.error.code]).toEqual([409, 'conflict'])

    // The relay refuses the removed daemon's connection.
    await eventually(async () => relay.logs().join('\n'), (l) => /"code":4403/.test(l) && l.includes('this device was removed from the session'), 'the relay to refuse the removed device')
    const onOther = await eventually(async () => (await other.api('GET', '/sessions')).json.sessions[0], (s) => s.relay === 'refused' || s.role === 'removed', 'the removed daemon to be cut off')
    expect(['refused', 'connecting', 'disconnected']).toContain(onOther.relay)

    // The owner writes on; it reaches the relay but never the removed daemon, which holds no key for it.
    await kai(owner, 'append', sessionId, 'after the removal')
    await eventually(async () => (await owner.api('GET', '/sessions')).json.sessions[0], (s) => s.sync === 'synced', 'the owner to be synced with the relay')
    const ownerKeys = await loadSessionKeys(new DataDir(owner.dataDir), sessionId)
    const otherKeys = await loadSessionKeys(new DataDir(other.dataDir), sessionId)
    expect(ownerKeys.map((k) => k.epoch)).toEqual([0, 1])
    expect(otherKeys.map((k) => k.epoch)).toEqual([0])
    await new Promise((r) => setTimeout(r, 1500))
    expect(contents((await other.api('GET', `/session/${sessionId}`)).json)).not.toContain('after the removal')

    // Straight to the relay with its own device key: refused at the door.
    const { device } = await loadOrCreateDeviceKeys(new DataDir(other.dataDir))
    const direct = await connectRelay(new WireDoc(), relay.url, async () => capabilityToParam(await signCapability({ room: sessionId }, device)))
    cleanups.push(() => direct.destroy())
    const refusal = await new Promise<{ code: number; reason: string }>((resolve) => direct.on('closed', resolve))
    direct.destroy()
    expect(refusal).toMatchObject({ code: 4403, reason: expect.stringMatching(/removed/) })
  })

  it('a cancelled invite\'s link opens nothing; a used one cannot be cancelled; a writer cannot cancel the owner\'s', async () => {
    const third = await spawnDaemon({ relayUrl: relay.url, label: 'stranger' })
    cleanups.push(() => third.cleanup())
    const { sessionId, spent } = await mirrored(other, 'server again')
    const link = linkOf(await kai(owner, 'handoff', sessionId, '--to', 'headless', '--type', 'observe'))
    const { invites } = await devicesOn(owner, sessionId)
    expect(invites).toEqual([expect.objectContaining({ transfer: 'observe' })])
    const invite = invites[0]!.invite
    const readable = await kai(owner, 'devices', sessionId)
    expect(readable).toMatch(new RegExp(`pending invites:[\\s\\S]*${invite}\\s+observe`))

    const path = (id: string) => `/session/${sessionId}/invites/${encodeURIComponent(id)}`
    await eventually(() => devicesOn(other, sessionId), (l) => l.invites.some((i) => i.invite === invite), 'the writer to see the invite')
    const refusals: Array<[DaemonProcess, string, number, string]> = [
      [other, invite, 403, 'forbidden'], // not its issuer, not the owner
      [owner, spent, 409, 'conflict'], // used already
      [owner, 'x', 400, 'invalid_input'],
      [owner, 'A'.repeat(43), 404, 'not_found'],
    ]
    for (const [d, id, status, code] of refusals) {
      const r = await d.api('DELETE', path(id))
      expect([r.status, r.json.error?.code], id).toEqual([status, code])
    }
    const devicePath = await owner.api('DELETE', path((await devicesOn(owner, sessionId)).devices[0]!.device))
    expect(devicePath.json.error.code).toBe('not_found') // a device is not an invite
    expect((await devicesOn(owner, sessionId)).invites.map((i) => i.invite)).toEqual([invite])

    const cancelled = await runCli(owner.dataDir, ['invite', 'cancel', sessionId, invite])
    expect(cancelled.code, cancelled.stderr).toBe(0)
    expect((await devicesOn(owner, sessionId)).invites).toEqual([])
    expect((await owner.api('DELETE', path(invite))).json.error.code).toBe('conflict')

    const before = (await devicesOn(owner, sessionId)).devices
    const opened = await runCli(third.dataDir, ['resume', '-'], { stdin: `${link}\n` })
    expect(opened.code).toBe(1)
    expect(opened.stderr).toMatch(/^kai: forbidden: the invite was already used, cancelled, has expired/)
    expect((await third.api('GET', '/sessions')).json.sessions).toEqual([])
    expect(existsSync(new DataDir(third.dataDir).sessionKeyFile(sessionId))).toBe(false)
    await new Promise((r) => setTimeout(r, 1000))
    expect((await devicesOn(owner, sessionId)).devices).toEqual(before)
  })

  it('leave: the session is gone from this daemon and its disk, also after a restart; the other daemon keeps it', async () => {
    const leaver = await spawnDaemon({ relayUrl: relay.url, label: 'leaver' })
    cleanups.push(() => leaver.cleanup())
    const { sessionId } = await mirrored(leaver, 'leaver')
    const dir = new DataDir(leaver.dataDir)
    expect(existsSync(dir.sessionKeyFile(sessionId))).toBe(true)

    const left = await runCli(leaver.dataDir, ['leave', sessionId])
    expect(left.code, left.stderr).toBe(0)
    expect(JSON.parse(await kai(leaver, '--json', 'list')).sessions).toEqual([])
    expect(existsSync(dir.sessionKeyFile(sessionId))).toBe(false)
    expect(existsSync(dir.sessionMetaFile(sessionId))).toBe(false)
    const again = await leaver.api('DELETE', `/session/${sessionId}`)
    expect([again.status, again.json.error.code]).toEqual([404, 'not_found'])

    await leaver.stop()
    const restarted = await leaver.restart()
    cleanups.push(() => restarted.cleanup())
    expect((await restarted.api('GET', '/sessions')).json.sessions).toEqual([])

    await kai(owner, 'append', sessionId, 'still here')
    expect(contents((await owner.api('GET', `/session/${sessionId}`)).json)).toEqual(['before', 'still here'])
  })
})
