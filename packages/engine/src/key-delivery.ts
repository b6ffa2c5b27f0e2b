import { equalBytes, grantKey, toBase64Url, type DeviceKey, type KeyGrant, type SessionKey, type SessionKeyring } from '@kai-sync/crypto'
import type { Member, Roster } from './roster'

// A handoff link carries no session key: once the target's enrollment (a
// roster entry with its X25519 box) arrives, a writer that holds the keys
// grants it every epoch's key through the wire doc's `keys` map. The device
// whose invite enrolled it does so at once; any other writer waits a little
// and grants only what is still missing, so a source that went offline does
// not leave the target keyless, and an online source's grants are not
// duplicated by every writer.

/** How long a writer other than the invite's issuer waits before granting what is still missing. */
export const FALLBACK_GRANT_MS = 3000

export interface KeyDeliveryHost {
  readonly sessionId: string
  readonly device: DeviceKey
  readonly keys: SessionKeyring
  readonly roster: Roster
  now(): number
  canWrite(): boolean
  addKeyGrants(grants: Uint8Array[]): void
  /** The key of an epoch in a form that can be wrapped (a browser's keys are not extractable). */
  exportKey?: (epoch: number) => Promise<SessionKey>
}

export class KeyDelivery {
  /** `recipient box epoch` of every grant in the wire doc (anyone's), and of those this device made. */
  private readonly granted = new Set<string>()
  private running: Promise<void> = Promise.resolve()
  private fallback: ReturnType<typeof setTimeout> | undefined
  private destroyed = false

  constructor(private readonly host: KeyDeliveryHost) {}

  /** A grant seen in the wire doc, whoever it is for. */
  noteGrant(grant: KeyGrant): void {
    this.granted.add(grantKeyOf(grant.recipient, grant.recipientBox, grant.epoch))
  }

  /**
   * Grants the keys owed to devices enrolled through an invite (the invite's
   * issuer at once, others after FALLBACK_GRANT_MS). Calls queue, so a
   * caller that awaits it (a takeover source about to step down) knows its
   * grants are in the wire doc.
   */
  deliver(): Promise<void> {
    const run = this.running.catch(() => {}).then(() => this.grantOwed(true))
    this.running = run
    return run
  }

  /** Resolves once the grants under way are in the wire doc. */
  idle(): Promise<void> {
    return this.running.catch(() => {})
  }

  destroy(): void {
    this.destroyed = true
    clearTimeout(this.fallback)
  }

  private async grantOwed(asIssuerOnly: boolean): Promise<void> {
    if (this.destroyed || !this.host.canWrite()) return
    const self = toBase64Url(this.host.device.publicKey)
    let waiting = false
    const grants: KeyGrant[] = []
    for (const member of this.owed()) {
      if (asIssuerOnly && member.via!.inviteIssuer !== self) {
        waiting = true
        continue
      }
      for (const epoch of this.host.keys.epochs()) {
        const id = grantKeyOf(member.device, member.box, epoch)
        if (this.granted.has(id)) continue
        const key = this.host.exportKey ? await this.host.exportKey(epoch) : this.host.keys.get(epoch)!
        grants.push(await grantKey({ sessionId: this.host.sessionId, key, recipient: member.device, recipientBox: member.box, issuer: this.host.device, issuedAt: this.host.now() }))
        this.granted.add(id)
      }
    }
    if (grants.length > 0 && !this.destroyed) this.host.addKeyGrants(grants.map((g) => g.bytes))
    if (waiting && this.fallback === undefined && !this.destroyed) {
      this.fallback = setTimeout(() => {
        this.fallback = undefined
        this.running = this.running.catch(() => {}).then(() => this.grantOwed(false))
      }, FALLBACK_GRANT_MS)
    }
  }

  /** Devices enrolled through an invite that may read, have a box, and lack a key this device holds. */
  private owed(): Member[] {
    const epochs = this.host.keys.epochs()
    return this.host.roster.list().filter(
      (m) =>
        m.via !== undefined &&
        (m.role === 'writer' || m.role === 'reader') &&
        m.box.some((b) => b !== 0) &&
        !equalBytes(m.device, this.host.device.publicKey) &&
        epochs.some((e) => !this.granted.has(grantKeyOf(m.device, m.box, e))),
    )
  }
}

function grantKeyOf(recipient: Uint8Array, box: Uint8Array, epoch: number): string {
  return `${toBase64Url(recipient)} ${toBase64Url(box)} ${epoch}`
}
