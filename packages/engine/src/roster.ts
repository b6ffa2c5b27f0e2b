import { ObservableV2 } from 'lib0/observable'
import { KaiError, toKaiError } from '@kai-sync/model'
import type { TransferType } from '@kai-sync/model'
import {
  HANDOFF_TTL_MS,
  INVITE_ROLES,
  compareBytes,
  decodeRosterEntry,
  equalBytes,
  isGenesis,
  toBase64Url,
  verifyRosterEntry,
  type Role,
  type RosterEntry,
  type SignatureVerifier,
} from '@kai-sync/crypto'

export interface Member {
  device: Uint8Array
  role: Role
  label: string
  version: number
  /** Demoted or removed devices: per stream, the last seq that stays valid. */
  until: Map<string, number>
  /** The X25519 key session keys are granted to; zeros if the device has none. */
  box: Uint8Array
  /** Who signed the entry that gave the current role (base64url). */
  issuer: string
  issuedAt: number
  /** For a device enrolled through an invite: the invite's issuer and the transfer. */
  via?: { inviteIssuer: string; transfer: TransferType }
  /** The one-time key of an invite (live, spent or retired), not a device. */
  invite?: true
}

/** How long after its invite a device may enroll with it (the token itself lives five minutes; this allows clock skew). */
export const INVITE_WINDOW_MS = 15 * 60 * 1000

/**
 * How long an invite is meant to live: its handoff token's lifetime. Its
 * issuer then retires it if it is still unspent (see `inviteRetiresAt`).
 */
export const INVITE_LIFETIME_MS = HANDOFF_TTL_MS

/**
 * The issuedAt of the entry that retires an unspent invite: fixed by the
 * invite, so every context of the issuing device signs the same bytes (one
 * entry, not several), and it sorts after every enrollment signed within
 * the invite's lifetime and before every later one.
 */
export function inviteRetiresAt(invite: Pick<Member, 'issuedAt'>): number {
  return invite.issuedAt + INVITE_LIFETIME_MS + 1
}

const TRANSFER_OF: Partial<Record<Role, TransferType>> = {
  invite_reader: 'observe',
  invite_writer: 'mirror',
  invite_takeover: 'takeover',
}

export function isInvite(role: Role | undefined): boolean {
  return role !== undefined && INVITE_ROLES.includes(role)
}

/**
 * True if `e` retires an invite key: a removal of it signed by the device
 * that issued the invite, or by the owner. Whether it takes effect depends
 * on its place in the fold (an enrollment before it spends the invite).
 */
export function retiresInvite(members: Map<string, Member>, owner: string, e: RosterEntry): boolean {
  const invite = members.get(toBase64Url(e.subject))
  const issuer = toBase64Url(e.issuer)
  return e.role === 'removed' && invite?.invite === true && (issuer === invite.issuer || issuer === owner)
}

export interface RosterEvents {
  change: () => void
}

/**
 * Who may do what in a session, as a pure function of the set of signed
 * entries: every replica that holds the same entries computes the same
 * roles, in whatever order they arrived.
 *
 * The entries are folded in (issuedAt, hash) order, genesis first:
 * - the genesis makes its subject the owner, whose key alone may remove;
 * - the owner may set any device's role (and its own: to step down);
 * - a writer may enroll a device that has no entry yet, and step itself
 *   down to reader or out;
 * - the owner or a writer may create an invite (a handoff's one-time key);
 *   the invite enrolls one new device, as a reader (observe) or a writer
 *   (mirror, takeover), within INVITE_WINDOW_MS, and is then spent;
 * - the invite's issuer (or the owner) may retire an unspent invite: an
 *   enrollment that sorts after the retirement enrolls nobody;
 * - a removal is final;
 * - an entry whose issuer lacked the authority at its place in the fold,
 *   or whose version is not above the subject's current one, is ignored.
 * The relay applies the same rules with the roles as they stand when an
 * entry reaches it, so an issuer cannot backdate its way around them.
 */
export function evaluateRoster(sessionId: string, entries: RosterEntry[]): Map<string, Member> {
  const members = new Map<string, Member>()
  const genesis = entries.find((e) => e.sessionId === sessionId && isGenesis(e))
  if (!genesis) return members
  const owner = toBase64Url(genesis.subject)
  members.set(owner, {
    device: genesis.subject,
    role: 'owner',
    label: genesis.label,
    version: genesis.version,
    until: new Map(),
    box: genesis.box,
    issuer: owner,
    issuedAt: genesis.issuedAt,
  })

  const ordered = entries
    .filter((e) => e !== genesis && e.sessionId === sessionId)
    .sort((a, b) => a.issuedAt - b.issuedAt || compareBytes(a.signature, b.signature))
  for (const e of ordered) applyRosterEntry(members, owner, e)
  return members
}

/**
 * One step of the fold: applies `e` to `members` (in place) if the rules
 * allow it at this point, and says whether they did. `owner` is the
 * genesis subject (base64url). The relay calls this with the roles as they
 * stand when an entry reaches it.
 */
export function applyRosterEntry(members: Map<string, Member>, owner: string, e: RosterEntry): boolean {
  if (isGenesis(e)) return false
  const subject = toBase64Url(e.subject)
  const issuer = toBase64Url(e.issuer)
  const current = members.get(subject)
  if (current?.role === 'removed' || e.version <= (current?.version ?? 0)) return false
  if (e.role === 'owner' && subject !== owner) return false
  const issuerMember = members.get(issuer)
  const issuerRole = issuerMember?.role
  const self = subject === issuer
  const fresh = !current && !self
  let via: Member['via']
  let allowed: boolean
  if (isInvite(e.role)) {
    allowed = fresh && (issuer === owner || issuerRole === 'writer')
  } else if (isInvite(issuerRole)) {
    const roles: Role[] = issuerRole === 'invite_reader' ? ['reader'] : ['writer', 'reader']
    const age = e.issuedAt - issuerMember!.issuedAt
    allowed = fresh && roles.includes(e.role) && age > 0 && age <= INVITE_WINDOW_MS
    if (allowed) {
      via = { inviteIssuer: issuerMember!.issuer, transfer: TRANSFER_OF[issuerRole!]! }
      members.set(issuer, { ...issuerMember!, role: 'removed' }) // spent
    }
  } else if (current?.invite) {
    // Only retiring it (or, as before, the invite key stepping itself out).
    allowed = retiresInvite(members, owner, e) || (self && e.role === 'removed')
  } else {
    allowed =
      issuer === owner ||
      (self && (e.role === 'reader' || e.role === 'removed') && issuerRole !== undefined && issuerRole !== 'removed') ||
      (fresh && issuerRole === 'writer' && (e.role === 'writer' || e.role === 'reader'))
  }
  if (!allowed || (e.role === 'removed' && subject === owner)) return false
  const until = new Map(current?.until ?? [])
  for (const u of e.until) {
    const key = toBase64Url(u.stream)
    until.set(key, Math.max(until.get(key) ?? 0, u.seq))
  }
  const box = e.box.some((b) => b !== 0) ? e.box : (current?.box ?? e.box)
  const member: Member = { device: e.subject, role: e.role, label: e.label || current?.label || '', version: e.version, until, box, issuer, issuedAt: e.issuedAt }
  const kept = via ?? current?.via
  if (kept) member.via = kept
  if (isInvite(e.role) || current?.invite) member.invite = true
  members.set(subject, member)
  return true
}

/** The live roster of a wire doc: verified entries and the roles they give. */
export class Roster extends ObservableV2<RosterEvents> {
  private readonly entries = new Map<string, RosterEntry>()
  private members = new Map<string, Member>()

  constructor(
    readonly sessionId: string,
    private readonly verifier: SignatureVerifier,
  ) {
    super()
  }

  /** Verifies and adds entries; returns why each refused one was refused. */
  async add(encoded: Uint8Array[]): Promise<KaiError[]> {
    const refused: KaiError[] = []
    const fresh: RosterEntry[] = []
    await Promise.all(
      encoded.map(async (bytes) => {
        try {
          const entry = decodeRosterEntry(bytes)
          const key = toBase64Url(entry.signature)
          if (this.entries.has(key)) return
          if (entry.sessionId !== this.sessionId) throw new KaiError('wrong_session', `roster entry for ${entry.sessionId}`)
          await verifyRosterEntry(entry, this.verifier)
          fresh.push(entry)
        } catch (e) {
          refused.push(toKaiError(e))
        }
      }),
    )
    if (fresh.length > 0) {
      for (const e of fresh) this.entries.set(toBase64Url(e.signature), e)
      this.members = evaluateRoster(this.sessionId, [...this.entries.values()])
      this.emit('change', [])
    }
    return refused
  }

  member(device: Uint8Array): Member | undefined {
    return this.members.get(toBase64Url(device))
  }

  roleOf(device: Uint8Array): Role | undefined {
    return this.member(device)?.role
  }

  get owner(): Uint8Array | undefined {
    for (const m of this.members.values()) if (m.role === 'owner') return m.device
    // The owner may have stepped down; the genesis still names it.
    for (const e of this.entries.values()) if (isGenesis(e) && e.sessionId === this.sessionId) return e.subject
    return undefined
  }

  /** May `device` write at this position of this stream? */
  mayWrite(device: Uint8Array, stream: Uint8Array, seq: number): boolean {
    const m = this.member(device)
    if (!m) return false
    if (m.role === 'owner' || m.role === 'writer') return true
    return seq <= (m.until.get(toBase64Url(stream)) ?? 0)
  }

  list(): Member[] {
    return [...this.members.values()]
  }

  latestIssuedAt(): number {
    let t = 0
    for (const e of this.entries.values()) t = Math.max(t, e.issuedAt)
    return t
  }

  /** The version a new entry about `device` must carry to supersede its current one. */
  nextVersion(device: Uint8Array): number {
    let v = 0
    for (const e of this.entries.values()) if (equalBytes(e.subject, device)) v = Math.max(v, e.version)
    return v + 1
  }
}
