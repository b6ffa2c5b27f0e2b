import { describe, expect, it } from 'vitest'
import { WebCryptoDeviceKey, createGenesis, signRosterEntry, type DeviceKey, type Role, type RosterEntry } from '@kai-sync/crypto'
import { INVITE_LIFETIME_MS, inviteRetiresAt } from '@kai-sync/engine'
import { RoomRoster } from './room-roster'

// The relay's roster rule for invites, without a process: `admit` is what
// the update guard asks before it stores a roster entry.

async function at(issuer: DeviceKey, subject: DeviceKey, role: Role, sessionId: string, issuedAt: number, version = 1): Promise<RosterEntry> {
  return signRosterEntry({ sessionId, subject: subject.publicKey, role, version, issuedAt, label: '' }, issuer)
}

async function room() {
  const [owner, writer, invite, target] = await Promise.all(Array.from({ length: 4 }, () => WebCryptoDeviceKey.generate()))
  const g = await createGenesis(owner!, 'owner', 1000)
  const s = g.sessionId
  const t0 = 10_000
  const roster = new RoomRoster(s)
  roster.addTrusted([g.bytes, (await at(owner!, writer!, 'writer', s, 2000)).bytes, (await at(writer!, invite!, 'invite_writer', s, t0)).bytes])
  const retirement = await at(writer!, invite!, 'removed', s, inviteRetiresAt({ issuedAt: t0 }), 2)
  return { s, t0, roster, owner: owner!, writer: writer!, invite: invite!, target: target!, retirement }
}

describe('the relay and an invite\'s retirement', () => {
  it('stores the issuer\'s retirement of its unspent invite, then refuses an enrollment with it even if backdated into the lifetime', async () => {
    const { s, t0, roster, invite, target, retirement } = await room()
    expect(roster.admit([retirement], null)).toHaveProperty('members')
    roster.addTrusted([retirement.bytes])
    const backdated = await at(invite, target, 'writer', s, t0 + 1000)
    expect(roster.admit([backdated], null)).toEqual({ refused: expect.any(String) })
  })

  it('stores a retirement signed offline after the invite was spent: the fold decides, the issuer is not shut out', async () => {
    const { s, t0, roster, invite, target, retirement } = await room()
    // Enrolled after the lifetime (within the roster's window), before the retirement reached the relay.
    const late = await at(invite, target, 'writer', s, t0 + INVITE_LIFETIME_MS + 60_000)
    expect(roster.admit([late], null)).toHaveProperty('members')
    roster.addTrusted([late.bytes])
    expect(roster.member(target.publicKey)?.role).toBe('writer')
    const verdict = roster.admit([retirement], null)
    expect(verdict).toHaveProperty('members')
    roster.addTrusted([retirement.bytes])
    // The retirement sorts before the late enrollment, so the relay folds as every replica does.
    expect(roster.member(target.publicKey)).toBeUndefined()
    expect(roster.member(invite.publicKey)?.role).toBe('removed')
  })

  it('stores one retirement per invite and signer: a second one, dated otherwise, is refused', async () => {
    const { s, t0, roster, writer, invite, target, retirement } = await room()
    roster.addTrusted([(await at(invite, target, 'writer', s, t0 + 1000)).bytes]) // spent
    expect(roster.admit([retirement], null)).toHaveProperty('members')
    roster.addTrusted([retirement.bytes])
    expect(roster.admit([await at(writer, invite, 'removed', s, t0 + 99, 2)], null)).toEqual({ refused: expect.any(String) })
  })

  it('refuses a retirement from a writer that did not issue the invite', async () => {
    const { s, roster, invite, owner } = await room()
    const other = await WebCryptoDeviceKey.generate()
    roster.addTrusted([(await at(owner, other, 'writer', s, 3000)).bytes])
    expect(roster.admit([await at(other, invite, 'removed', s, 20_000, 2)], null)).toEqual({ refused: expect.any(String) })
  })
})
