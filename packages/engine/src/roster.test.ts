import { describe, expect, it } from 'vitest'
import {
  WebCryptoDeviceKey,
  createGenesis,
  newStreamId,
  signRosterEntry,
  webCryptoVerifier,
  type DeviceKey,
  type Role,
  type RosterEntry,
  type StreamPosition,
} from '@kai-sync/crypto'
import { INVITE_LIFETIME_MS, Roster, evaluateRoster, inviteRetiresAt } from './roster'

let clock = 1000
async function entry(issuer: DeviceKey, subject: DeviceKey, role: Role, sessionId: string, version = 1, until: StreamPosition[] = []): Promise<RosterEntry> {
  return signRosterEntry({ sessionId, subject: subject.publicKey, role, version, issuedAt: clock++, label: '', until }, issuer)
}

async function devices(n: number): Promise<DeviceKey[]> {
  return Promise.all(Array.from({ length: n }, () => WebCryptoDeviceKey.generate()))
}

function roles(sessionId: string, entries: RosterEntry[], ...who: DeviceKey[]): Array<Role | undefined> {
  const members = evaluateRoster(sessionId, entries)
  const roster = { member: (d: DeviceKey) => [...members.values()].find((m) => m.device.every((b, i) => b === d.publicKey[i])) }
  return who.map((d) => roster.member(d)?.role)
}

describe('roster rules', () => {
  it('the owner enrolls writers and readers; a writer enrolls a new device (a handoff)', async () => {
    const [owner, laptop, phone, watch, tablet] = await devices(5)
    const g = await createGenesis(owner!, 'owner')
    const s = g.sessionId
    const entries = [g, await entry(owner!, laptop!, 'writer', s), await entry(owner!, watch!, 'reader', s), await entry(laptop!, phone!, 'writer', s)]
    // A reader enrolls nobody.
    entries.push(await entry(watch!, tablet!, 'writer', s))
    expect(roles(s, entries, owner!, laptop!, phone!, watch!, tablet!)).toEqual(['owner', 'writer', 'writer', 'reader', undefined])
  })

  it('a writer cannot change the role of a device that already has one; the owner can', async () => {
    const [owner, a, b] = await devices(3)
    const g = await createGenesis(owner!, 'owner')
    const s = g.sessionId
    const base = [g, await entry(owner!, a!, 'writer', s), await entry(owner!, b!, 'writer', s)]
    expect(roles(s, [...base, await entry(a!, b!, 'reader', s, 2)], b!)).toEqual(['writer'])
    expect(roles(s, [...base, await entry(owner!, b!, 'reader', s, 2)], b!)).toEqual(['reader'])
  })

  it('a removal is final and only the owner (or the device itself) may remove; the owner cannot be removed', async () => {
    const [owner, a, b] = await devices(3)
    const g = await createGenesis(owner!, 'owner')
    const s = g.sessionId
    const base = [g, await entry(owner!, a!, 'writer', s), await entry(owner!, b!, 'writer', s)]
    expect(roles(s, [...base, await entry(a!, b!, 'removed', s, 2)], b!)).toEqual(['writer'])
    const removed = [...base, await entry(owner!, b!, 'removed', s, 2), await entry(owner!, b!, 'writer', s, 3)]
    expect(roles(s, removed, b!)).toEqual(['removed'])
    expect(roles(s, [...base, await entry(a!, owner!, 'removed', s, 2)], owner!)).toEqual(['owner'])
  })

  it('a step-down keeps the writes made before it valid, and only those', async () => {
    const [owner, a] = await devices(2)
    const g = await createGenesis(owner!, 'owner')
    const s = g.sessionId
    const stream = newStreamId()
    const verifier = webCryptoVerifier()
    const roster = new Roster(s, verifier)
    await roster.add([g.bytes, (await entry(owner!, a!, 'writer', s)).bytes])
    expect(roster.mayWrite(a!.publicKey, stream, 99)).toBe(true)
    await roster.add([(await entry(a!, a!, 'reader', s, 2, [{ stream, seq: 7 }])).bytes])
    expect(roster.roleOf(a!.publicKey)).toBe('reader')
    expect(roster.mayWrite(a!.publicKey, stream, 7)).toBe(true)
    expect(roster.mayWrite(a!.publicKey, stream, 8)).toBe(false)
    expect(roster.mayWrite(a!.publicKey, newStreamId(), 1)).toBe(false)
  })

  it('the same entries in any order give the same roles', async () => {
    const [owner, a, b, c] = await devices(4)
    const g = await createGenesis(owner!, 'owner')
    const s = g.sessionId
    const entries = [
      g,
      await entry(owner!, a!, 'writer', s),
      await entry(a!, b!, 'writer', s),
      await entry(b!, c!, 'reader', s),
      await entry(a!, a!, 'reader', s, 2),
      await entry(owner!, b!, 'removed', s, 2),
    ]
    const expected = roles(s, entries, owner!, a!, b!, c!)
    expect(expected).toEqual(['owner', 'reader', 'removed', 'reader'])
    for (let i = 0; i < 20; i++) {
      const shuffled = [...entries].sort(() => Math.random() - 0.5)
      expect(roles(s, shuffled, owner!, a!, b!, c!)).toEqual(expected)
    }
  })

  it('refuses forged entries and entries for another session, with their codes', async () => {
    const [owner, a] = await devices(2)
    const g = await createGenesis(owner!, 'owner')
    const roster = new Roster(g.sessionId, webCryptoVerifier())
    const forged = (await entry(owner!, a!, 'writer', g.sessionId)).bytes.slice()
    forged[forged.length - 1]! ^= 1
    const elsewhere = (await entry(owner!, a!, 'writer', 'another-session')).bytes
    const refused = await roster.add([g.bytes, forged, elsewhere, new Uint8Array([1, 2])])
    expect(refused.map((e) => e.code).sort()).toEqual(['bad_signature', 'malformed', 'wrong_session'])
    expect(roster.roleOf(a!.publicKey)).toBeUndefined()
  })

  it('without a genesis nobody has a role, and a squatter\'s genesis for another id counts for nothing', async () => {
    const [owner, squatter] = await devices(2)
    const g = await createGenesis(owner!, 'owner')
    const fake = await signRosterEntry({ sessionId: g.sessionId, subject: squatter!.publicKey, role: 'owner', version: 1, issuedAt: 1, nonce: g.nonce, label: '' }, squatter!)
    expect(roles(g.sessionId, [fake], squatter!)).toEqual([undefined])
  })
})

describe('invite retirement', () => {
  async function at(issuer: DeviceKey, subject: DeviceKey, role: Role, sessionId: string, issuedAt: number, version = 1): Promise<RosterEntry> {
    return signRosterEntry({ sessionId, subject: subject.publicKey, role, version, issuedAt, label: '' }, issuer)
  }

  it('an enrollment signed within the lifetime wins over the retirement, a later one loses, in any arrival order', async () => {
    const [owner, writer, invite, early, late] = await devices(5)
    const g = await createGenesis(owner!, 'owner', 1000)
    const s = g.sessionId
    const t0 = 10_000
    const base = [g, await at(owner!, writer!, 'writer', s, 2000), await at(writer!, invite!, 'invite_writer', s, t0)]
    const retirement = await at(writer!, invite!, 'removed', s, inviteRetiresAt({ issuedAt: t0 }), 2)
    // Without the retirement both would be inside INVITE_WINDOW_MS: the first one wins.
    const inside = await at(invite!, early!, 'writer', s, t0 + INVITE_LIFETIME_MS)
    const after = await at(invite!, late!, 'writer', s, t0 + INVITE_LIFETIME_MS + 60_000)
    expect(roles(s, [...base, after], late!)).toEqual(['writer'])
    for (let i = 0; i < 10; i++) {
      expect(roles(s, [...base, retirement, inside].sort(() => Math.random() - 0.5), early!, invite!)).toEqual(['writer', 'removed'])
      expect(roles(s, [...base, retirement, after].sort(() => Math.random() - 0.5), late!, invite!)).toEqual([undefined, 'removed'])
    }
  })

  it('only the invite\'s issuer or the owner retires it', async () => {
    const [owner, writer, other, invite, target] = await devices(5)
    const g = await createGenesis(owner!, 'owner', 1000)
    const s = g.sessionId
    const base = [g, await at(owner!, writer!, 'writer', s, 2000), await at(owner!, other!, 'writer', s, 2001), await at(writer!, invite!, 'invite_writer', s, 3000)]
    const enrollment = await at(invite!, target!, 'writer', s, 3000 + INVITE_LIFETIME_MS + 10)
    expect(roles(s, [...base, await at(other!, invite!, 'removed', s, 3001, 2), enrollment], target!)).toEqual(['writer'])
    expect(roles(s, [...base, await at(owner!, invite!, 'removed', s, 3001, 2), enrollment], target!)).toEqual([undefined])
    expect(roles(s, [...base, await at(writer!, invite!, 'removed', s, 3001, 2), enrollment], target!)).toEqual([undefined])
    // Retiring an invite is all anyone may do to it: it never becomes a device.
    expect(roles(s, [...base, await at(owner!, invite!, 'writer', s, 3001, 2)], invite!)).toEqual(['invite_writer'])
  })
})
