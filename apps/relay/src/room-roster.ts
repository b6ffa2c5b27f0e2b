import { decodeRosterEntry, equalBytes, isGenesis, toBase64Url, type RosterEntry } from '@kai-sync/crypto'
import { applyRosterEntry, evaluateRoster, retiresInvite, type Member } from '@kai-sync/engine'

/**
 * The relay's view of a room's roster: entries it accepted and the roles
 * they give, computed by the engine's `evaluateRoster`, so relay and
 * replicas agree on who may write.
 */
export class RoomRoster {
  private readonly entries = new Map<string, RosterEntry>()
  private members = new Map<string, Member>()

  constructor(readonly room: string) {}

  get hasGenesis(): boolean {
    return this.members.size > 0
  }

  /** Adds entries that already passed the guard (or a trusted store); no signature check. */
  addTrusted(encoded: Uint8Array[]): boolean {
    let changed = false
    for (const bytes of encoded) {
      let entry: RosterEntry
      try {
        entry = decodeRosterEntry(bytes)
      } catch {
        continue
      }
      const key = toBase64Url(entry.signature)
      if (this.entries.has(key) || entry.sessionId !== this.room) continue
      this.entries.set(key, entry)
      changed = true
    }
    if (changed) this.members = evaluateRoster(this.room, [...this.entries.values()])
    return changed
  }

  has(entry: RosterEntry): boolean {
    return this.entries.has(toBase64Url(entry.signature))
  }

  /** The genesis subject, whose key grants date the epochs (see EpochStarts). */
  get owner(): Uint8Array | undefined {
    for (const e of this.entries.values()) if (isGenesis(e) && e.sessionId === this.room) return e.subject
    return undefined
  }

  member(device: Uint8Array): Member | undefined {
    return this.members.get(toBase64Url(device))
  }

  /** Same rule as the engine's `Roster.mayWrite`: writers always, demoted devices up to their `until`. */
  mayWrite(device: Uint8Array, stream: string, seq: number, members = this.members): boolean {
    const m = members.get(toBase64Url(device))
    if (!m) return false
    if (m.role === 'owner' || m.role === 'writer') return true
    return seq <= (m.until.get(stream) ?? 0)
  }

  isWriter(device: Uint8Array, members = this.members): boolean {
    const role = members.get(toBase64Url(device))?.role
    return role === 'owner' || role === 'writer'
  }

  /**
   * The roles after adding `fresh` (entries of one update), or a reason
   * they are refused. Each entry must be allowed by the roles as they stand
   * when it arrives (not merely by its place in the fold, which its issuer
   * chose by picking issuedAt) and must take effect in the fold. The one
   * exception is an invite's retirement by its issuer: it only takes away,
   * and an issuer that signed it while offline must not be shut out because
   * the invite was spent meanwhile; the fold decides which came first.
   */
  admit(fresh: RosterEntry[], connectionDevice: Uint8Array | null): { members: Map<string, Member> } | { refused: string } {
    let entries = [...this.entries.values()]
    let members = this.members
    // Genesis first, then in fold order, so an update may carry a genesis and the entries that follow it.
    const ordered = [...fresh].sort((a, b) => Number(isGenesis(b)) - Number(isGenesis(a)) || a.issuedAt - b.issuedAt)
    for (const entry of ordered) {
      if (entry.sessionId !== this.room) return { refused: 'a roster entry for another session' }
      if (members.size === 0) {
        if (!isGenesis(entry)) return { refused: 'the room has no genesis yet; the first entry must be the genesis of this session id' }
        if (connectionDevice && !equalBytes(entry.issuer, connectionDevice)) return { refused: 'a genesis must be signed by the device that creates the room' }
      } else if (this.retiresInvite(entry, members, entries)) {
        entries = [...entries, entry]
        members = evaluateRoster(this.room, entries)
        continue
      } else if (!this.allowedNow(entry, members)) {
        return { refused: 'the issuer\'s current role does not allow this roster entry' }
      }
      entries = [...entries, entry]
      members = evaluateRoster(this.room, entries)
      const after = members.get(toBase64Url(entry.subject))
      if (!after || after.version !== entry.version || after.role !== entry.role) return { refused: 'the roster rules do not apply this entry' }
    }
    return { members }
  }

  private allowedNow(e: RosterEntry, members: Map<string, Member>): boolean {
    const owner = this.ownerKey(members)
    if (owner === undefined) return false
    // A copy: the step mutates, and the caller re-folds everything anyway.
    const scratch = new Map(members)
    return applyRosterEntry(scratch, owner, e)
  }

  /** One retirement per invite and signer: entries are kept forever, so no signer may pile them up. */
  private retiresInvite(e: RosterEntry, members: Map<string, Member>, entries: RosterEntry[]): boolean {
    const owner = this.ownerKey(members)
    if (owner === undefined || !retiresInvite(members, owner, e)) return false
    return !entries.some((x) => x.role === 'removed' && equalBytes(x.subject, e.subject) && equalBytes(x.issuer, e.issuer))
  }

  /** The genesis subject: the owner's authority rests on the genesis, whatever its role now. */
  private ownerKey(members: Map<string, Member>): string | undefined {
    for (const e of this.entries.values()) if (isGenesis(e) && e.sessionId === this.room) return toBase64Url(e.subject)
    for (const [key, m] of members) if (m.role === 'owner') return key
    return undefined
  }
}
