import { KaiError, type TransferType } from '@kai-sync/model'
import { fromBase64Url, toBase64Url, type SignatureVerifier } from '@kai-sync/crypto'
import {
  decodeHandoffToken,
  handoffTokenId,
  verifyHandoffClaim,
  verifyHandoffToken,
  type HandoffToken,
} from '@kai-sync/crypto/handoff-token'
import { MAX_VOLATILE_BYTES, type RegisterHandoffBody, type ResumeBody, type ResumeResponse } from './protocol'

// The relay's side of a handoff: it files a token when the source registers
// it and burns it when the target resumes with it. Only the relay needs
// this: it is `@kai-sync/handoff/registry`, kept out of the client entry.

export interface HandoffRecord {
  tokenId: string
  sessionId: string
  /** The device that issued the token (base64url): it must still be a writer when the token is used. */
  issuer: string
  transfer: TransferType
  expiresAt: number
  volatile?: string | undefined
  /** The device that resumed with the token, once it has. */
  usedBy?: string
  box?: string
}

/** Where the relay files tokens. `claim` must be atomic: it is what makes a token single-use. */
export interface HandoffStore {
  put(record: HandoffRecord): Promise<void>
  get(tokenId: string): Promise<HandoffRecord | undefined>
  /**
   * Marks the token used by `device` (with `box`) unless it was used
   * already, in one atomic step; returns the record as it was. A store that
   * outlives the relay process keeps the mark, so a used token stays used.
   */
  claim(tokenId: string, device: string, box: string): Promise<HandoffRecord | undefined>
  /** The unexpired records of a session that `device` resumed with. */
  usedBy(sessionId: string, device: string): Promise<HandoffRecord[]>
  /** Forgets tokens that expired before `now`. */
  sweep(now: number): Promise<void>
  /** Releases what the store holds open (a database), if anything. */
  close?(): Promise<void>
}

export class MemoryHandoffStore implements HandoffStore {
  private readonly records = new Map<string, HandoffRecord>()
  /** Token ids by (session, device that used them): the relay asks at every non-member's connection. */
  private readonly used = new Map<string, Set<string>>()

  async put(record: HandoffRecord): Promise<void> {
    this.records.set(record.tokenId, { ...record })
  }

  async get(tokenId: string): Promise<HandoffRecord | undefined> {
    const r = this.records.get(tokenId)
    return r && { ...r }
  }

  async claim(tokenId: string, device: string, box: string): Promise<HandoffRecord | undefined> {
    const r = this.records.get(tokenId)
    if (!r) return undefined
    const before = { ...r }
    if (!r.usedBy) {
      Object.assign(r, { usedBy: device, box })
      const key = usedKey(r.sessionId, device)
      this.used.set(key, (this.used.get(key) ?? new Set()).add(tokenId))
    }
    return before
  }

  async usedBy(sessionId: string, device: string): Promise<HandoffRecord[]> {
    const ids = this.used.get(usedKey(sessionId, device)) ?? []
    return [...ids].flatMap((id) => {
      const r = this.records.get(id)
      return r ? [{ ...r }] : []
    })
  }

  async sweep(now: number): Promise<void> {
    // Used tokens are kept a day past expiry so a replay still finds them burned.
    for (const [id, r] of this.records) {
      if (r.expiresAt + 24 * 3600_000 >= now) continue
      this.records.delete(id)
      if (!r.usedBy) continue
      const key = usedKey(r.sessionId, r.usedBy)
      const ids = this.used.get(key)
      ids?.delete(id)
      if (ids?.size === 0) this.used.delete(key)
    }
  }
}

function usedKey(sessionId: string, device: string): string {
  return `${sessionId} ${device}`
}

export interface HandoffRegistryOptions {
  verifier: SignatureVerifier
  /** Whether `issuer` may hand `sessionId` off: an owner or writer in the room's roster. */
  mayHandOff(sessionId: string, issuer: Uint8Array): boolean | Promise<boolean>
  store?: HandoffStore | undefined
  now?: () => number
  /** The largest sealed volatile state a source may park with a token (default 256 KiB; the body schema allows no more). */
  maxVolatileBytes?: number
}

const ROLE_OF: Record<TransferType, 'writer' | 'reader'> = { takeover: 'writer', mirror: 'writer', observe: 'reader' }

/**
 * The record of a token `device` may still use, or the error that says why
 * not. The device that claimed it may claim it again (a retry after its
 * answer was lost); any other device is too late.
 */
function claimable(record: HandoffRecord | undefined, device: string, box: string): HandoffRecord {
  if (!record) throw new KaiError('not_found', 'this handoff was never registered; start it again on the source device')
  if (record.usedBy && (record.usedBy !== device || record.box !== box)) {
    throw new KaiError('already_used', 'this handoff link was used already; start a new handoff')
  }
  return record
}

/** Files handoff tokens and burns them on first use. */
export class HandoffRegistry {
  private readonly store: HandoffStore
  private readonly now: () => number

  constructor(private readonly options: HandoffRegistryOptions) {
    this.store = options.store ?? new MemoryHandoffStore()
    this.now = options.now ?? Date.now
  }

  /** The source registers a token it issued (POST /session/:id/handoff). */
  async register(sessionId: string, body: RegisterHandoffBody): Promise<{ expires_at: number }> {
    const token = await this.check(sessionId, body.token)
    if (!(await this.options.mayHandOff(sessionId, token.issuer))) {
      throw new KaiError('forbidden', 'the token\'s issuer may not hand this session off')
    }
    const limit = this.options.maxVolatileBytes ?? MAX_VOLATILE_BYTES
    if (body.volatile && Math.floor((body.volatile.length * 3) / 4) > limit) throw new KaiError('too_large', `the volatile state is over ${limit} bytes`)
    const id = handoffTokenId(token)
    if (await this.store.get(id)) throw new KaiError('conflict', 'this token is registered already')
    const record: HandoffRecord = { tokenId: id, sessionId, issuer: toBase64Url(token.issuer), transfer: token.transfer, expiresAt: token.expiresAt }
    if (body.volatile) record.volatile = body.volatile
    await this.store.put(record)
    return { expires_at: token.expiresAt }
  }

  /**
   * The target resumes (POST /session/:id/resume): the token is burned and
   * bound to the target's keys, which the claim proves the invite secret's
   * holder chose. Every check comes first; a refusal burns nothing.
   */
  async resume(sessionId: string, body: ResumeBody): Promise<ResumeResponse> {
    const token = await this.check(sessionId, body.token)
    const device = fromBase64Url(body.device)
    const box = fromBase64Url(body.box)
    const signature = fromBase64Url(body.claim)
    if (device?.length !== 32 || box?.length !== 32) throw new KaiError('invalid_input', 'device and box are 32-byte keys, base64url')
    if (!signature) throw new KaiError('invalid_input', 'the claim is not base64url')
    await verifyHandoffClaim(token, { device, box, signature }, this.options.verifier)
    const id = handoffTokenId(token)
    claimable(await this.store.get(id), body.device, body.box)
    // Checked again at use: a device demoted or removed since it issued the
    // token can no longer let anyone in. The token stays unburned.
    if (!(await this.options.mayHandOff(sessionId, token.issuer))) {
      throw new KaiError('forbidden', 'the device that issued this token may no longer hand this session off')
    }
    // The claim is what makes the token single-use: two resumes may both get this far.
    const before = claimable(await this.store.claim(id, body.device, body.box), body.device, body.box)
    const response: ResumeResponse = { transfer: token.transfer, role: ROLE_OF[token.transfer] }
    if (before.volatile) response.volatile = before.volatile
    return response
  }

  /**
   * A device that resumed a handoff of this session and has not yet sent its
   * roster entry, with the role it is joining as; the relay lets it connect
   * so it can sync and enroll.
   */
  async enrollee(sessionId: string, device: Uint8Array): Promise<'writer' | 'reader' | undefined> {
    const live: HandoffRecord[] = []
    for (const r of await this.store.usedBy(sessionId, toBase64Url(device))) {
      if (r.expiresAt < this.now()) continue
      // Its issuer lost the right to hand off meanwhile: the handoff is void.
      const issuer = fromBase64Url(r.issuer)
      if (issuer && (await this.options.mayHandOff(sessionId, issuer))) live.push(r)
    }
    if (live.length === 0) return undefined
    return live.some((r) => ROLE_OF[r.transfer] === 'writer') ? 'writer' : 'reader'
  }

  sweep(): Promise<void> {
    return this.store.sweep(this.now())
  }

  private async check(sessionId: string, encoded: string): Promise<HandoffToken> {
    const bytes = fromBase64Url(encoded)
    if (!bytes) throw new KaiError('invalid_input', 'the token is not base64url')
    const token = decodeHandoffToken(bytes)
    await verifyHandoffToken(token, this.options.verifier, { sessionId, now: this.now() })
    return token
  }
}
