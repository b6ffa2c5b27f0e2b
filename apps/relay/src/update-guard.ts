import * as Y from 'yjs'
import {
  decodeEnvelope,
  decodeKeyGrant,
  decodeRosterEntry,
  isGenesis,
  toBase64Url,
  verifyEnvelope,
  verifyKeyGrant,
  verifyRosterEntry,
  type Envelope,
  type KeyGrant,
  type RosterEntry,
  type SignatureVerifier,
} from '@kai-sync/crypto'
import { CoverChains, WireDoc, type EpochStarts, type Member } from '@kai-sync/engine'
import { CloseCode, Refusal } from './close-codes'
import { scanWireUpdate, type ScanResult } from './update-scan'
import type { LogCopies } from './log-copies'
import { checkReadOnly } from './reader-guard'
import type { GuardContext } from './guard-context'
import { UpdateView, type Decoded } from './update-view'

// Decides, before a Yjs update touches a room's wire doc, whether the relay
// may merge it. The wire doc holds binary items only: signed envelopes in
// the `log` array, signed roster entries in the `roster` map and signed key
// grants (a session key wrapped for one device) in the `keys` map, each
// under the hash of its bytes. Everything else is refused, whole.
//
// Yjs integrates an item whose dependencies (earlier clocks of its client,
// its neighbours, the items a deletion names) it has not seen later, when
// they arrive, without asking anyone. So an update whose dependencies the
// relay lacks is never handed to Yjs: it is deferred and checked again once
// more has been merged.

/**
 * 'verbatim' is an 'accept' for an update that Yjs will integrate exactly as
 * sent: new log items only, each client's starting at the clock the doc has
 * for it, nothing deleted, no trailing bytes. What it adds to the doc is then
 * the update itself, so the room stores and relays these bytes instead of
 * having Yjs re-encode the same items (the common case: one client appends).
 */
export type Verdict = 'accept' | 'verbatim' | 'defer' | StaleDrop

/**
 * An 'accept' for an update carrying envelopes sealed under an epoch older
 * than one that had started (the stale-epoch rule every replica applies):
 * the room merges it and deletes those log items in the same transaction,
 * so it stores and relays tombstones in their place, and the connection
 * stays open. Refusing the whole update instead shut the writer out for
 * good: a writer that sealed under the old key before it heard of the
 * removal holds the stale envelope in its wire doc and sends it again on
 * every connection, each closed before the new key could reach it. Its
 * engine re-seals what it wrote once it has the key (see EpochStarts).
 */
export interface StaleDrop {
  stale: Y.ID[]
}

/**
 * An update as it arrived, decoded once, with the signature checks of the
 * envelopes it appends already under way. A room checks its updates one at
 * a time, against the state each will be merged into; the signatures do
 * not depend on that state, so they are verified (on another core, under
 * load) while earlier updates of the room are still being checked.
 */
export interface PreparedUpdate {
  readonly bytes: Uint8Array
  readonly scan: ScanResult
  /** Null when the update does not decode (or the scan already refused it). */
  readonly decoded: Decoded | null
  /** The log envelopes found on arrival, each with its signature check started. */
  readonly envelopes: Map<Y.Item, { envelope: Envelope; valid: Promise<boolean> }>
  /** When it reached the relay (Metrics.clock()), for the latency histograms; undefined when nothing is timed. */
  readonly arrived: number | undefined
}

/**
 * Decodes an update and, if `speculate`, starts verifying each new binary
 * item that decodes as an envelope of this session. Never throws: what is
 * wrong with the update is said by checkUpdate, in the room's order.
 * Speculate only for senders that may write, so a reader cannot make the
 * relay verify what it will refuse anyway.
 */
export function prepareUpdate(bytes: Uint8Array, ctx: Pick<GuardContext, 'room' | 'maxStructs' | 'wire' | 'verifier'>, speculate: boolean, arrived?: number): PreparedUpdate {
  const scan = scanWireUpdate(bytes, ctx.maxStructs)
  const envelopes: PreparedUpdate['envelopes'] = new Map()
  let decoded: Decoded | null = null
  if (scan === 'ok' || scan === 'trailing') {
    try {
      decoded = Y.decodeUpdate(bytes) as Decoded
    } catch {
      // checkUpdate refuses it
    }
  }
  if (decoded && speculate) {
    const store = ctx.wire.doc.store
    for (const s of decoded.structs) {
      // Log items have no key; what the doc already has is never checked.
      if (!(s instanceof Y.Item) || !(s.content instanceof Y.ContentBinary) || s.parentSub !== null) continue
      if (s.id.clock + s.length <= Y.getState(store, s.id.client)) continue
      let envelope: Envelope
      try {
        envelope = decodeEnvelope(s.content.content)
      } catch {
        continue
      }
      if (envelope.header.sessionId !== ctx.room) continue
      envelopes.set(s, { envelope, valid: signatureValid(envelope, ctx.verifier) })
    }
  }
  return { bytes, scan, decoded, envelopes, arrived }
}

function signatureValid(envelope: Envelope, verifier: SignatureVerifier): Promise<boolean> {
  return verifyEnvelope(envelope, verifier).then(
    () => true,
    () => false,
  )
}

/** Throws a Refusal, or says whether the update can be merged now. */
export async function checkUpdate(update: PreparedUpdate, ctx: GuardContext): Promise<Verdict> {
  const { scan, decoded } = update
  if (scan === 'too-many') throw new Refusal(CloseCode.TooLarge, `more than ${ctx.maxStructs} items in one update`)
  if (scan === 'foreign') throw new Refusal(CloseCode.BadRequest, 'the wire doc holds only binary envelopes and roster entries')
  if (!decoded) throw new Refusal(CloseCode.BadRequest, 'the update does not decode as a Yjs update')
  const view = new UpdateView(ctx.wire, decoded.structs)
  // Deferred first: what builds on structs the room lacks (a client's
  // append sent before its sync step 2 brought the genesis) is judged
  // once they are here, by every rule, this one included.
  if (view.hasGaps()) return 'defer'
  checkReadOnly(decoded, view, ctx)

  const logItems: Y.Item[] = []
  const rosterItems: Y.Item[] = []
  const keyItems: Y.Item[] = []
  let verbatim = scan === 'ok' && decoded.structs.length > 0 && decoded.ds.clients.size === 0
  /** Per client, the clock the next struct must start at for `verbatim`. */
  const next = new Map<number, number>()
  for (const s of decoded.structs) {
    if (verbatim) {
      const client = s.id.client
      const at = next.get(client) ?? view.stateOf(client)
      if (!(s instanceof Y.Item) || s.id.clock !== at || !(s.content instanceof Y.ContentBinary)) verbatim = false
      else next.set(client, at + s.length)
    }
    if (!(s instanceof Y.Item) || !view.isNew(s)) continue
    const place = view.placeOf(s)
    if (place !== 'log') verbatim = false
    if (place === 'missing') return 'defer'
    if (place === 'other') throw new Refusal(CloseCode.BadRequest, 'the wire doc holds only the `log` array and the `roster` and `keys` maps')
    if (place === 'gc') continue // Yjs drops an item next to collected garbage: it inserts nothing
    if (s.content instanceof Y.ContentDeleted) {
      if (place === 'roster' || place === 'keys') checkDeletedMapItem(s, place === 'roster' ? ctx.wire.roster : ctx.wire.keys)
      continue
    }
    if (!(s.content instanceof Y.ContentBinary)) throw new Refusal(CloseCode.BadRequest, 'the wire doc holds only binary envelopes and roster entries')
    if (place === 'log' ? s.parentSub !== null : s.parentSub === null && s.origin === null) {
      throw new Refusal(CloseCode.BadRequest, 'a log item has a key, or a map item has none')
    }
    ;(place === 'log' ? logItems : place === 'roster' ? rosterItems : keyItems).push(s)
  }

  const deleted = view.deletions(decoded.ds)
  if (deleted === 'missing') return 'defer'

  // Most updates carry log items only: no roster or key checks to wait for (each await is a promise and a turn of the microtask queue).
  const members = rosterItems.length === 0 ? undefined : await checkRosterItems(rosterItems, view, ctx)
  const grants = keyItems.length === 0 ? [] : await checkKeyItems(keyItems, members, view, ctx)
  const stale: Y.ID[] = []
  const envelopes = await checkLogItems(logItems, members, update.envelopes, ctx, epochsWith(grants, members, ctx), stale)
  // A stale envelope on another device's stream, or at a position taken, is refused all the same
  // (neither is refused from a peer relay: see StreamIndex.check).
  ctx.streams.check(notCopies(envelopes, ctx.copies), ctx.device === null)
  // A stale snapshot's deletions stand, as on every replica (which refuses only its content).
  checkDeletions(deleted, envelopes, view, ctx)
  if (stale.length > 0) return { stale }
  return verbatim ? 'verbatim' : 'accept'
}

/** The envelopes that are neither copies of one in the log nor repeated in the update: the room drops those. */
function notCopies(envelopes: Map<Y.Item, Envelope>, copies: Pick<LogCopies, 'holds'>): Envelope[] {
  const out: Envelope[] = []
  const seen = new Set<string>()
  for (const [item, env] of envelopes) {
    const bytes = (item.content as Y.ContentBinary).content
    const signature = toBase64Url(env.signature)
    if (copies.holds(bytes) || seen.has(signature)) continue
    seen.add(signature)
    out.push(env)
  }
  return out
}

function checkDeletedMapItem(item: Y.Item, map: Y.Map<Uint8Array>): void {
  // A collected map item placed as the key's newest value would delete the
  // live entry it supersedes: Yjs deletes the left neighbour of a new value.
  const key = item.parentSub
  const live = key === null ? undefined : (map as unknown as { _map: Map<string, Y.Item> })._map.get(key)
  if (item.origin !== null || item.rightOrigin !== null || key === null || (live && !live.deleted)) {
    throw new Refusal(CloseCode.Forbidden, 'roster entries and key grants are never deleted')
  }
}

/** A `roster` or `keys` item: it must decode, and sit under the hash of its bytes. */
function decodeMapItem<T>(item: Y.Item, view: UpdateView, decode: (bytes: Uint8Array) => T, what: string): T {
  const bytes = (item.content as Y.ContentBinary).content
  let value: T
  try {
    value = decode(bytes)
  } catch {
    throw new Refusal(CloseCode.BadRequest, `a map item is not a ${what}`)
  }
  if (view.keyOf(item) !== WireDoc.entryKey(bytes)) throw new Refusal(CloseCode.BadRequest, `a ${what} is stored under the wrong key`)
  return value
}

/**
 * A key grant is opaque to the relay (the key inside is wrapped for its
 * recipient), but its issuer signed it in the clear: only an owner or
 * writer of this session may hand out its keys.
 */
async function checkKeyItems(items: Y.Item[], members: Map<string, Member> | undefined, view: UpdateView, ctx: GuardContext): Promise<KeyGrant[]> {
  if (items.length > 0 && !ctx.roster.hasGenesis && !members) {
    throw new Refusal(CloseCode.Forbidden, 'this room does not exist yet; its first update must carry the genesis of its session id')
  }
  return Promise.all(
    items.map(async (item) => {
      const grant = decodeMapItem(item, view, decodeKeyGrant, 'key grant')
      if (grant.sessionId !== ctx.room) throw new Refusal(CloseCode.Forbidden, 'a key grant signed for another session')
      if (!ctx.roster.isWriter(grant.issuer, members)) throw new Refusal(CloseCode.Forbidden, 'a key grant from a device that may not grant keys in this session')
      try {
        await verifyKeyGrant(grant, ctx.verifier)
      } catch {
        throw new Refusal(CloseCode.Forbidden, 'a key grant\'s signature does not verify')
      }
      return grant
    }),
  )
}

/**
 * The epoch starts to judge an update's envelopes by: the room's, and
 * those the owner's grants in the same update date, as a replica that
 * takes the update whole would know them.
 */
function epochsWith(grants: KeyGrant[], members: Map<string, Member> | undefined, ctx: GuardContext): EpochStarts {
  if (grants.length === 0) return ctx.epochs
  const owner = ctx.roster.owner ?? (members ? genesisSubject(members) : undefined)
  if (!owner) return ctx.epochs
  const epochs = ctx.epochs.copy()
  for (const g of grants) epochs.recordGrant(g, ctx.room, owner)
  return epochs
}

function genesisSubject(members: Map<string, Member>): Uint8Array | undefined {
  for (const m of members.values()) if (m.role === 'owner') return m.device
  return undefined
}

async function checkRosterItems(items: Y.Item[], view: UpdateView, ctx: GuardContext): Promise<Map<string, Member> | undefined> {
  const fresh: RosterEntry[] = []
  await Promise.all(
    items.map(async (item) => {
      const entry = decodeMapItem(item, view, decodeRosterEntry, 'roster entry')
      if (ctx.roster.has(entry)) return
      try {
        await verifyRosterEntry(entry, ctx.verifier)
      } catch {
        throw new Refusal(CloseCode.Forbidden, 'a roster entry\'s signature does not verify')
      }
      fresh.push(entry)
    }),
  )
  if (fresh.length === 0) return undefined
  const unique = [...new Map(fresh.map((e) => [toBase64Url(e.signature), e])).values()]
  const verdict = ctx.roster.admit(unique, ctx.device)
  if ('refused' in verdict) {
    const squat = !ctx.roster.hasGenesis && !unique.some((e) => isGenesis(e) && e.sessionId === ctx.room)
    throw new Refusal(CloseCode.Forbidden, squat ? 'not the genesis of this session id: a room belongs to the device its id derives from' : verdict.refused)
  }
  return verdict.members
}

async function checkLogItems(
  items: Y.Item[],
  members: Map<string, Member> | undefined,
  prepared: PreparedUpdate['envelopes'],
  ctx: GuardContext,
  epochs: EpochStarts,
  stale: Y.ID[],
): Promise<Map<Y.Item, Envelope>> {
  const out = new Map<Y.Item, Envelope>()
  if (items.length > 0 && !ctx.roster.hasGenesis && !members) {
    throw new Refusal(CloseCode.Forbidden, 'this room does not exist yet; its first update must carry the genesis of its session id')
  }
  await Promise.all(
    items.map(async (item) => {
      const started = prepared.get(item)
      const env = started?.envelope ?? logEnvelope((item.content as Y.ContentBinary).content)
      // The replicas' rule (EpochStarts): dropped, so the relay stores and relays none a replica refuses (see StaleDrop).
      if (await checkEnvelope(env, started?.valid, members, ctx, epochs)) stale.push(item.id)
      out.set(item, env)
    }),
  )
  return out
}

function logEnvelope(bytes: Uint8Array): Envelope {
  try {
    return decodeEnvelope(bytes)
  } catch {
    throw new Refusal(CloseCode.BadRequest, 'a log item is not an envelope')
  }
}

/** Throws a Refusal unless a writer of this session signed `env` for it; says whether it is stale. */
async function checkEnvelope(env: Envelope, valid: Promise<boolean> | undefined, members: Map<string, Member> | undefined, ctx: GuardContext, epochs: EpochStarts): Promise<boolean> {
  const h = env.header
  if (h.sessionId !== ctx.room) throw new Refusal(CloseCode.Forbidden, 'an envelope signed for another session')
  const allowed = h.kind === 'snapshot' ? ctx.roster.isWriter(h.device, members) : ctx.roster.mayWrite(h.device, toBase64Url(h.stream), h.seq, members)
  if (!allowed) throw new Refusal(CloseCode.Forbidden, 'an envelope from a device that may not write in this session')
  if (!(await (valid ?? signatureValid(env, ctx.verifier)))) {
    throw new Refusal(CloseCode.Forbidden, 'an envelope\'s signature does not verify')
  }
  return epochs.staleness(h) !== null
}

/**
 * A rival a peer relay sent under an item id the room holds with other
 * bytes (see rival-envelopes.ts): the guard never saw it, as Yjs ignores
 * it, so it is judged here as a new log item would be, before the room
 * appends it as its own. Null if it is stale (replicas refuse it anyway).
 */
export async function checkRival(bytes: Uint8Array, ctx: GuardContext): Promise<Envelope | null> {
  const env = logEnvelope(bytes)
  if (await checkEnvelope(env, undefined, undefined, ctx, ctx.epochs)) return null
  ctx.streams.check([env], true)
  return env
}

/**
 * A log entry may be deleted only when a snapshot that stays (already in
 * the log, or arriving in this update) holds it, by the rule the engine
 * compacts with: on the chain that ends at a cover's hash, walked through
 * the envelopes this room holds, or, where the room holds that chain only
 * in part, on the snapshot signer's own stream at or below its cover and,
 * for an older snapshot's covers, below where the walk breaks (see
 * CoverChains); roster entries never.
 * Costs one pass over the log, for updates that delete only.
 */
function checkDeletions(deleted: Y.Item[], fresh: Map<Y.Item, Envelope>, view: UpdateView, ctx: GuardContext): void {
  if (deleted.length === 0) return
  const gone = new Set(deleted)
  const snapshots: Envelope[] = []
  const held = new Map<Y.Item, Envelope>()
  const note = (item: Y.Item, env: Envelope) => {
    if (env.header.sessionId !== ctx.room) return
    held.set(item, env)
    if (env.header.kind === 'snapshot' && !gone.has(item)) snapshots.push(env)
  }
  for (const [item, env] of fresh) note(item, env)
  for (let item = ctx.wire.log._start; item !== null; item = item.right) {
    if (item.deleted || !(item.content instanceof Y.ContentBinary)) continue
    try {
      note(item, decodeEnvelope(item.content.content))
    } catch {
      // not an envelope: deleted by nothing
    }
  }
  // The relay may hold a chain only in part (see CoverChains): what a device compacted offline, or another snapshot compacted first.
  const chains = new CoverChains(held.values(), { partialLog: true })
  for (const item of deleted) {
    const place = item.parent === null || typeof item.parent === 'string' ? view.placeOf(item) : view.placeOfExisting(item)
    if (place === 'roster' || place === 'keys') throw new Refusal(CloseCode.Forbidden, 'roster entries and key grants are never deleted')
    const env = held.get(item)
    if (!env || !chains.holds(snapshots, env)) {
      throw new Refusal(CloseCode.Forbidden, 'a log entry may be deleted only with a snapshot whose covers chain down to it')
    }
  }
}
