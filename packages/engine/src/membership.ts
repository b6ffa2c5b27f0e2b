import * as z from 'zod/mini'
import { KaiError, toKaiError, type TransferType } from '@kai-sync/model'
import {
  NO_BOX,
  SessionKey,
  decodeKeyGrant,
  equalBytes,
  grantKey,
  openKeyGrant,
  signRosterEntry,
  toBase64Url,
  utf8,
  verifyKeyGrant,
  type BoxKey,
  type DeviceKey,
  type KeyGrant,
  type Role,
  type RosterEntry,
  type SessionKeyring,
  type SignatureVerifier,
  type StreamPosition,
  type EnvelopeHeader,
} from '@kai-sync/crypto'
import type { NobleDeviceKey } from '@kai-sync/crypto/noble'
import { inviteRetiresAt, isInvite, type Member, type Roster } from './roster'
import { datesEpoch, hasStaleApplied, hasStaleOwn, type EpochStarts } from './epoch-starts'
import type { StreamLedger } from './stream-ledger'
import { KeyDelivery } from './key-delivery'

/** The control message a takeover source seals before it steps down. */
export const MovedControlSchema = z.object({
  type: z.literal('moved'),
  /** The device that took the session over (base64url) and its label. */
  device: z.string(),
  label: z.string(),
})
export type MovedControl = z.infer<typeof MovedControlSchema>

export function parseControl(payload: Uint8Array): MovedControl | null {
  try {
    return MovedControlSchema.parse(JSON.parse(new TextDecoder().decode(payload)))
  } catch {
    return null
  }
}

const INVITE_ROLE: Record<TransferType, Role> = {
  observe: 'invite_reader',
  mirror: 'invite_writer',
  takeover: 'invite_takeover',
}

/** What membership needs from its engine. */
export interface MembershipHost {
  readonly sessionId: string
  readonly device: DeviceKey
  readonly box: BoxKey | undefined
  readonly keys: SessionKeyring
  readonly roster: Roster
  readonly ledger: StreamLedger
  readonly verifier: SignatureVerifier
  readonly epochs: EpochStarts
  /** The wire doc's log, to find this device's stale envelopes. */
  log(): Uint8Array[]
  now(): number
  /** Adds signed roster entries to the wire doc and processes them here. */
  addRosterEntries(entries: Uint8Array[]): Promise<void>
  addKeyGrants(grants: Uint8Array[]): void
  sendControl(payload: Uint8Array): Promise<void>
  /** This context's stream and where it stands. */
  position(): StreamPosition
  compact(): Promise<number | null>
  keyAdded(key: SessionKey): void
  moved(to: MovedControl): void
  /** Appends an audit entry if this device may write; ids make it idempotent. */
  audit(id: string, action: string, details: Record<string, string>): void
  canWrite(): boolean
  /** The key of an epoch in a form that can be wrapped for another device (default: the keyring's). */
  exportKey?: (epoch: number) => Promise<SessionKey>
}

/**
 * Who is in the session and who holds which key: roles, handoff invites,
 * key grants, removal with a new key epoch, and the step-down of a device
 * whose takeover invite was used.
 */
export class Membership {
  /** Grants that arrived before the roster entry of their issuer. */
  private pendingGrants: KeyGrant[] = []
  /** Grants that arrived before the genesis, read later for the epoch starts. */
  private undatedGrants: KeyGrant[] = []
  /** Per epoch, the latest creation time of this device's envelopes another replica deleted from the log (see noteOwnDropped). */
  private droppedOwn = new Map<number, number>()
  private steppingDown = false
  /** Invites whose retirement is being signed, so a roster change meanwhile does not sign it twice. */
  private readonly retiring = new Set<string>()
  private stepping: Promise<void> = Promise.resolve()
  private readonly delivery: KeyDelivery

  constructor(private readonly host: MembershipHost) {
    this.delivery = new KeyDelivery(host)
  }

  /** After a roster change: grants the session keys to devices that enrolled through an invite (see KeyDelivery). */
  deliverKeys(): Promise<void> {
    return this.delivery.deliver()
  }

  destroy(): void {
    this.delivery.destroy()
  }

  /** Signs a roster entry about `subject` and adds it. The roster rules decide whether it counts. */
  async setRole(
    subject: Uint8Array,
    role: Role,
    options: { label?: string; until?: StreamPosition[]; box?: Uint8Array; signer?: DeviceKey; issuedAt?: number } = {},
  ): Promise<RosterEntry> {
    const { roster } = this.host
    const entry = await signRosterEntry(
      {
        sessionId: this.host.sessionId,
        subject,
        role,
        version: roster.nextVersion(subject),
        // After every entry this device has seen, so the fold places it
        // after the entry that gave its signer the authority.
        issuedAt: options.issuedAt ?? Math.max(this.host.now(), roster.latestIssuedAt() + 1),
        label: options.label ?? '',
        until: options.until ?? [],
        box: options.box ?? NO_BOX,
      },
      options.signer ?? this.host.device,
    )
    await this.host.addRosterEntries([entry.bytes])
    return entry
  }

  /**
   * Creates a one-time invite for a handoff: a fresh key whose roster entry
   * lets it enroll one device for `transfer`. Its secret goes only into the
   * resume link's fragment.
   */
  async createInvite(transfer: TransferType): Promise<{ invite: NobleDeviceKey; entry: RosterEntry }> {
    // noble (an invite's secret is bytes that travel) is fetched with the first handoff, not with the page.
    const { NobleDeviceKey } = await import('@kai-sync/crypto/noble')
    const invite = await NobleDeviceKey.generate()
    const entry = await this.setRole(invite.publicKey, INVITE_ROLE[transfer], { label: `invite (${transfer})` })
    if (this.host.roster.roleOf(invite.publicKey) !== INVITE_ROLE[transfer]) {
      throw new KaiError('forbidden', 'only the owner or a writer can hand this session off')
    }
    return { invite, entry }
  }

  /**
   * Cancels an unspent invite now (its issuer or the owner): an enrollment
   * signed after this enrolls nobody. One signed before it still counts.
   */
  async cancelInvite(invite: Uint8Array): Promise<RosterEntry> {
    const { roster } = this.host
    const m = roster.member(invite)
    if (!m?.invite) throw new KaiError('not_found', 'no invite with this key in the roster')
    if (!isInvite(m.role)) throw new KaiError('conflict', 'the invite was already used, cancelled or retired')
    const entry = await this.setRole(invite, 'removed')
    if (isInvite(roster.roleOf(invite))) throw new KaiError('forbidden', 'only the invite\'s issuer or the owner can cancel it')
    return entry
  }

  /**
   * Retires every unspent invite this device issued whose lifetime has
   * passed: at open (invites that expired while it was closed) and on a
   * timer while it runs. Off the kai relay nothing else ends an invite
   * before INVITE_WINDOW_MS. Returns the signing under way and when the
   * next invite expires.
   */
  retireExpiredInvites(): { retiring: Promise<void>; next: number | undefined } {
    const self = toBase64Url(this.host.device.publicKey)
    const now = this.host.now()
    let next: number | undefined
    const signing: Promise<unknown>[] = []
    for (const m of this.host.roster.list()) {
      const key = toBase64Url(m.device)
      if (!isInvite(m.role) || m.issuer !== self || this.retiring.has(key)) continue
      const at = inviteRetiresAt(m)
      if (at > now) {
        next = Math.min(next ?? at, at)
        continue
      }
      this.retiring.add(key)
      signing.push(this.setRole(m.device, 'removed', { issuedAt: at }).finally(() => this.retiring.delete(key)))
    }
    return { retiring: Promise.all(signing).then(() => undefined), next }
  }

  /** The target of a handoff enrolls itself, signing its entry with the invite key. */
  async enrollWithInvite(invite: DeviceKey, role: 'writer' | 'reader', label: string): Promise<void> {
    const box = this.host.box?.publicKey
    await this.setRole(this.host.device.publicKey, role, { label, signer: invite, ...(box ? { box } : {}) })
    if (this.host.roster.roleOf(this.host.device.publicKey) !== role) {
      throw new KaiError('forbidden', 'the invite was already used, cancelled, has expired, or does not allow this role')
    }
  }

  /**
   * Removes a device (owner only) and starts a new key epoch: a fresh key,
   * granted to every remaining member with a box, then a snapshot under it.
   * The removed device holds no key to anything written after this.
   */
  async removeDevice(device: Uint8Array): Promise<SessionKey> {
    const { roster } = this.host
    if (!roster.owner || !equalBytes(roster.owner, this.host.device.publicKey)) {
      throw new KaiError('forbidden', 'only the session owner can remove a device')
    }
    if (equalBytes(device, this.host.device.publicKey)) throw new KaiError('invalid_input', 'the owner cannot remove itself')
    const removal = await this.setRole(device, 'removed', { until: this.host.ledger.streamsOf(device) })
    // The new epoch starts at the removal: what is sealed under the old one after it is stale.
    const key = await this.rotateKey(removal.issuedAt)
    await this.host.compact()
    return key
  }

  /**
   * This device steps itself out of the session (a writer or reader, as it
   * leaves): its roster entry says `removed`, naming its stream positions
   * so what it wrote stays valid. Returns null when the rules allow no such
   * step: the owner cannot leave the roster, and a removed device is out.
   * It starts no new epoch: a device that leaves deletes its keys; one that
   * must be shut out is removed by the owner instead.
   */
  async leave(): Promise<RosterEntry | null> {
    const { roster, device } = this.host
    const role = roster.roleOf(device.publicKey)
    if (role !== 'writer' && role !== 'reader') return null
    const until = [...this.host.ledger.streamsOf(device.publicKey)]
    const own = this.host.position()
    if (!until.some((u) => equalBytes(u.stream, own.stream))) until.push(own)
    return this.setRole(device.publicKey, 'removed', { until })
  }

  /** A new epoch: its key is granted to every member that should read (removed ones excluded). */
  async rotateKey(startsAt = this.host.now()): Promise<SessionKey> {
    const epoch = Math.max(...this.host.keys.epochs(), -1) + 1
    const key = await SessionKey.generate(epoch, { extractable: true })
    const readers = this.host.roster.list().filter((m) => ['owner', 'writer', 'reader'].includes(m.role) && hasBox(m))
    const grants = await Promise.all(readers.map((m) => this.grant(key, m, startsAt)))
    this.host.epochs.record(epoch, startsAt)
    this.host.addKeyGrants(grants.map((g) => g.bytes))
    for (const g of grants) this.delivery.noteGrant(g)
    this.host.keys.add(key)
    this.host.keyAdded(key)
    return key
  }

  /** Wraps `key` for one member's box. */
  grant(key: SessionKey, member: Member, issuedAt = this.host.now()): Promise<KeyGrant> {
    return grantKey({ sessionId: this.host.sessionId, key, recipient: member.device, recipientBox: member.box, issuer: this.host.device, issuedAt })
  }

  /** Opens the grants addressed to this device; returns the refusals worth reporting. */
  async receiveGrants(encoded: Uint8Array[]): Promise<KaiError[]> {
    const refused: KaiError[] = []
    const grants: KeyGrant[] = [...this.pendingGrants]
    const held = grants.length
    this.pendingGrants = []
    for (const bytes of encoded) {
      try {
        grants.push(decodeKeyGrant(bytes))
      } catch (e) {
        refused.push(toKaiError(e))
      }
    }
    // Held grants were read for their dates when they first came.
    let learned = await this.recordEpochStarts(grants.slice(held), refused)
    const { box, roster, keys } = this.host
    for (const grant of grants) {
      if (grant.sessionId === this.host.sessionId) this.delivery.noteGrant(grant)
      if (!box || !equalBytes(grant.recipient, this.host.device.publicKey) || !equalBytes(grant.recipientBox, box.publicKey)) continue
      if (grant.sessionId !== this.host.sessionId || keys.has(grant.epoch)) continue
      const issuerRole = roster.roleOf(grant.issuer)
      if (issuerRole === undefined) {
        this.pendingGrants.push(grant) // its issuer's roster entry has not arrived yet
        continue
      }
      try {
        // The device whose invite enrolled this one is trusted for its keys
        // even once it stepped down: a takeover source grants, then steps
        // down, and both may arrive here in one batch.
        const inviter = roster.member(this.host.device.publicKey)?.via?.inviteIssuer === toBase64Url(grant.issuer) && issuerRole !== 'removed'
        if (issuerRole !== 'owner' && issuerRole !== 'writer' && !inviter) throw new KaiError('unauthorized_signer', `a ${issuerRole} may not grant keys`)
        await verifyKeyGrant(grant, this.host.verifier)
        const key = await SessionKey.fromRaw(grant.epoch, await openKeyGrant(grant, box), { extractable: true })
        keys.add(key)
        this.host.keyAdded(key)
        learned = true
      } catch (e) {
        refused.push(toKaiError(e))
      }
    }
    if (learned) this.resealIfStale()
    return refused
  }

  /**
   * The owner's grants date the epochs they start (see EpochStarts). Every
   * grant is read, not only this device's: the starts must be the same on
   * every replica. Returns true if a start is new.
   */
  private async recordEpochStarts(grants: KeyGrant[], refused: KaiError[]): Promise<boolean> {
    const owner = this.host.roster.owner
    const undated = this.undatedGrants.splice(0)
    if (!owner) {
      this.undatedGrants.push(...undated, ...grants)
      return false
    }
    let learned = false
    await Promise.all(
      [...undated, ...grants].map(async (grant) => {
        if (!datesEpoch(grant, this.host.sessionId, owner)) return
        try {
          await verifyKeyGrant(grant, this.host.verifier)
        } catch (e) {
          if (!equalBytes(grant.recipient, this.host.device.publicKey)) refused.push(toKaiError(e))
          return
        }
        if (this.host.epochs.recordGrant(grant, this.host.sessionId, owner)) learned = true
      }),
    )
    return learned
  }

  /**
   * Another replica deleted from the log envelopes this device sealed
   * (`headers`), or the device's store gave back some it kept (see
   * DroppedOwn). Most often an honest snapshot holds them; but the kai
   * relay also drops those it finds sealed under an epoch that was over by
   * then, its snapshots too, and this device may learn of that epoch only
   * later. Their content lives on in this context's session doc, but the
   * log no longer shows them, so `hasStaleOwn` cannot find them once a
   * current key arrives: what is kept here (the latest creation time per
   * epoch, enough for the stale-epoch rule) says whether a re-seal is owed
   * all the same.
   */
  noteOwnDropped(headers: Pick<EnvelopeHeader, 'epoch' | 'createdAt'>[]): void {
    let owed = false
    for (const h of headers) {
      this.droppedOwn.set(h.epoch, Math.max(h.createdAt, this.droppedOwn.get(h.epoch) ?? 0))
      owed ||= this.host.epochs.staleness(h) !== null
    }
    // Only a stale one is owed a re-seal now (one the rule refuses later is, once its start arrives:
    // see receiveGrants). Any other deletion, most often another replica's snapshot replacing this
    // device's, asks for nothing: compacting in answer to it, two writers would answer each other's.
    if (owed) this.resealIfStale()
  }

  /**
   * If this device sealed envelopes the stale-epoch rule refuses (in the
   * log, or dropped from it: see noteOwnDropped) and now holds a key that
   * is current, a snapshot under it re-seals what they carried and deletes
   * them from the log. Not awaited: compaction waits for the intake round
   * this runs in.
   */
  private resealIfStale(): void {
    const { keys, epochs, device } = this.host
    if (keys.epochs().length === 0) return
    const now = this.host.now()
    if (epochs.staleness({ epoch: keys.current.epoch, createdAt: now })) return
    const owed = [...this.droppedOwn].some(([epoch, createdAt]) => epochs.staleness({ epoch, createdAt }) !== null)
    const log = this.host.log()
    // Another device's stale envelope applied here before the start was
    // known is answered like an over-claim: a snapshot of this state holds
    // its content for the replicas that refused it (see hasStaleApplied).
    if (!owed && !hasStaleOwn(log, device.publicKey, epochs, keys.current.epoch, now) && !(this.host.canWrite() && hasStaleApplied(log, device.publicKey, epochs, this.host.ledger))) return
    // Any snapshot sealed from now on holds the dropped content: the session doc has had it since it was written.
    void this.host.compact().then((replaced) => {
      if (replaced !== null && owed) this.droppedOwn.clear()
    })
  }

  /**
   * After a roster change: audits every handoff this device issued that a
   * device has now accepted. The id names the target, so several contexts
   * of this device record it once.
   */
  noteCompletedHandoffs(): void {
    const self = toBase64Url(this.host.device.publicKey)
    for (const m of this.host.roster.list()) {
      if (m.via?.inviteIssuer !== self) continue
      const device = toBase64Url(m.device)
      this.host.audit(`handoff.completed:${device}`, 'handoff.completed', { device, label: m.label, transfer: m.via.transfer })
    }
  }

  /**
   * After a roster change: if a takeover invite this device issued was used,
   * say where the session went and step down to reader. The step-down names
   * this device's stream positions, so what it wrote before stays valid.
   */
  stepDownIfTakenOver(): Promise<void> {
    // Kept, so whenIdle can wait for a step-down under way (it grants keys first).
    const run = this.stepDownNow()
    this.stepping = Promise.all([this.stepping, run.catch(() => {})]).then(() => {})
    return run
  }

  /** Resolves once the key grants and the step-down under way are in the wire doc. */
  async idle(): Promise<void> {
    await Promise.all([this.delivery.idle(), this.stepping])
  }

  private async stepDownNow(): Promise<void> {
    const { roster, device } = this.host
    const self = toBase64Url(device.publicKey)
    const role = roster.roleOf(device.publicKey)
    if (this.steppingDown || (role !== 'owner' && role !== 'writer')) return
    const successor = roster.list().find((m) => m.via?.transfer === 'takeover' && m.via.inviteIssuer === self)
    if (!successor) return
    this.steppingDown = true
    try {
      // The successor holds no key until it is granted one: grant first, then step down.
      await this.deliverKeys()
      const moved: MovedControl = { type: 'moved', device: toBase64Url(successor.device), label: successor.label }
      // Listeners may still write (an audit entry, a last note) before the step-down.
      this.host.moved(moved)
      await this.host.sendControl(utf8(JSON.stringify(moved)))
      const until = [...this.host.ledger.streamsOf(device.publicKey)]
      const own = this.host.position()
      if (!until.some((u) => equalBytes(u.stream, own.stream))) until.push(own)
      await this.setRole(device.publicKey, 'reader', { until })
    } finally {
      this.steppingDown = false
    }
  }
}

function hasBox(m: Member): boolean {
  return m.box.some((b) => b !== 0)
}
