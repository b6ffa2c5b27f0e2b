import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as prng from 'lib0/prng'
import { SessionDoc } from '@kai-sync/model'
import {
  SESSION_NONCE_BYTES,
  STREAM_BYTES,
  SessionKey,
  ZERO_HASH,
  compareBytes,
  decodeEnvelope,
  deriveClientId,
  deriveSessionId,
  equalBytes,
  openEnvelope,
  sealEnvelope,
  toBase64Url,
  type Envelope,
  type EnvelopeHeader,
} from '@kai-sync/crypto'
import { deviceIdOf } from '../sync-engine'
import { transportOrigin } from '../origins'
import { planCompaction } from '../compaction'
import type { Replica, SimSession } from './replicas'

// The toolkit of a member who cheats: each function crafts, with the
// hostile device's own key and the session key, the envelopes of one
// attack, validly signed and sealed, and injects them into the hostile
// replica's wire doc, from where the simulated relay spreads them. Every
// message id an attack hopes to show starts with 'evil-'; content a
// hostile device may legitimately write starts with 'hostile-ok-'.

export type AttackKind = 'hijack' | 'equivocation' | 'overclaim' | 'copiedcovers' | 'forged' | 'reader' | 'replay' | 'garbage'

export const ATTACK_KINDS: readonly AttackKind[] = ['hijack', 'equivocation', 'overclaim', 'copiedcovers', 'forged', 'reader', 'replay', 'garbage']

/**
 * The codes an honest replica may refuse each attack with. An overclaiming
 * snapshot is not refused (it is trusted for what it holds); it must hide
 * nothing, and a replica that holds content it claims without holding it
 * reports it as `over_claim` (and re-publishes that content). An attack may
 * also stay held (a gap, a key that never comes).
 */
export const REFUSED_AS: Record<AttackKind, readonly string[]> = {
  hijack: ['stream_not_owned'],
  equivocation: ['equivocation'],
  overclaim: ['over_claim'],
  copiedcovers: ['over_claim'],
  forged: ['forged_author', 'audit_rewrite'],
  reader: ['unauthorized_signer'],
  replay: ['wrong_session', 'decrypt_failed', 'stale_epoch'],
  garbage: ['malformed', 'client_id_not_owned'],
}

export type RelayVerdict = 'refuses' | 'drops' | 'passes'

export interface Attack {
  kind: AttackKind
  /** What a rejection names: `${device}/${stream}/${seq}` of each crafted envelope. */
  positions: string[]
  /** Messages it carried that its signer may write ('hostile-ok-*'): every replica must show them. */
  legit: string[]
  /** The envelopes it put into the hostile replica's log, one list per transaction (one update each), in order. */
  sent: Uint8Array[][]
  /**
   * What the relay's guard, which reads headers and signatures but no
   * plaintext, must do with the last of `sent` (the earlier ones are
   * honest): 'refuses' (4403), 'drops' (merges a tombstone in its place:
   * an envelope sealed under an older epoch after a newer one started, as
   * an honest writer racing a removal seals too) or 'passes'. Forged
   * authorship, garbage, over-claiming snapshots and keys the session
   * never had are sealed inside: only replicas can tell.
   */
  relay: RelayVerdict
  /** Which variant of its kind, for the counts. */
  variant: string
  /**
   * The stream positions an over-claiming snapshot claims: an engine that
   * took the claim in before the content covers it (or a later position
   * of that stream, whose structs Yjs keeps pending without the earlier
   * ones) when it compacts, and is rightly reported for it.
   */
  claims?: Claim[]
}

/** A stream (as an `over_claim` report names it: see Intake) and a claimed position on it. */
export interface Claim {
  stream: string
  seq: number
}

export function claimOf(c: Pick<EnvelopeHeader, 'stream'> & { seq: number }): Claim {
  return { stream: toBase64Url(c.stream).slice(0, 8), seq: c.seq }
}

/** Whether each position an `over_claim` report names is at or after one of `claims` on its stream. */
export function inheritsClaims(message: string, claims: Claim[]): boolean {
  const named = [...message.matchAll(/(\S{8}) seq (\d+) \(/g)]
  return named.length > 0 && named.every(([, stream, seq]) => claims.some((c) => c.stream === stream && c.seq <= Number(seq)))
}

export interface HostileContext {
  session: SimSession
  hostile: Replica
  /** The devices whose envelopes an attack may name, hijack or claim. */
  honest: Replica[]
  /** A key of an epoch the session never had, and one posing as its current epoch. */
  foreign: { nextEpoch: SessionKey; sameEpoch: SessionKey }
  /** Envelopes the hostile device signed in another session it belongs to: replayed here verbatim. */
  elsewhere?: Uint8Array[] | undefined
  /** The session's clock: an old-epoch replay is dated now, after the newer epoch started. */
  now?: () => number
  step: number
}

/** Keys no member of `session` holds: for replays sealed under another epoch's key. */
export async function foreignKeys(session: SimSession): Promise<HostileContext['foreign']> {
  return { nextEpoch: await SessionKey.generate(session.key.epoch + 1), sameEpoch: await SessionKey.generate(session.key.epoch) }
}

export function positionOf(h: Pick<EnvelopeHeader, 'device' | 'stream' | 'seq'>): string {
  return `${toBase64Url(h.device)}/${toBase64Url(h.stream)}/${h.seq}`
}

/** The Yjs update appending message `id` by `author`, as `client`, on top of `doc` (which it changes). */
function messageUpdate(client: number, id: string, author: string, doc = new Y.Doc()): Uint8Array {
  doc.clientID = client
  const before = Y.encodeStateVector(doc)
  const s = new SessionDoc({ device: author, mode: 'tab', doc })
  s.appendMessage({ id, role: 'user', content: id, timestamp: 1 })
  s.destroy()
  return Y.encodeStateAsUpdate(doc, before)
}

/** A stream id from the seed, so a replay crafts the same Yjs client ids. */
function streamId(gen: prng.PRNG): Uint8Array {
  return prng.uint8Array(gen, STREAM_BYTES)
}

function fork(doc: Y.Doc): Y.Doc {
  const copy = new Y.Doc()
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc))
  return copy
}

function header(ctx: HostileContext, stream: Uint8Array, fields: Partial<Omit<EnvelopeHeader, 'device' | 'epoch'>> = {}) {
  const client = deriveClientId(ctx.hostile.device.publicKey, stream)
  return { kind: 'update' as const, sessionId: ctx.session.sessionId, stream, seq: 1, prev: ZERO_HASH, createdAt: ctx.now?.() ?? 1, clientIds: [client], covers: [], ...fields }
}

async function seal(ctx: HostileContext, h: ReturnType<typeof header>, plaintext: Uint8Array, key = ctx.hostile.engine.keys.current): Promise<Envelope> {
  return sealEnvelope({ header: h, plaintext, key, signer: ctx.hostile.device })
}

/** Puts envelopes into the hostile replica's log in ONE transaction, so they travel as one update. */
function inject(ctx: HostileContext, envelopes: Array<Envelope | Uint8Array>): Uint8Array[] {
  const wire = ctx.hostile.engine.wire
  const bytes = envelopes.map((e) => (e instanceof Uint8Array ? e : e.bytes))
  wire.append(bytes, transportOrigin('hostile'))
  return bytes
}

function attack(kind: AttackKind, envelopes: Envelope[], sent: Uint8Array[][], relay: RelayVerdict, variant: string = kind, legit: string[] = []): Attack {
  return { kind, positions: [...new Set(envelopes.map((e) => positionOf(e.header)))], legit, sent, relay, variant }
}

/** Bytes from the seed: what an attack picks must not depend on the platform's randomness, so a seed replays it. */
function seededBytes(gen: prng.PRNG, length: number): Uint8Array {
  return prng.uint8Array(gen, length)
}

/** The last update envelope of some honest device's stream that the hostile replica has seen, or undefined. */
function honestTip(gen: prng.PRNG, ctx: HostileContext): Envelope | undefined {
  const tips = new Map<string, Envelope>()
  const rank = (env: Envelope) => ctx.honest.findIndex((r) => equalBytes(r.device.publicKey, env.header.device))
  for (const env of ctx.hostile.engine.wire.envelopes().map(decodeEnvelope)) {
    if (env.header.kind !== 'update' || rank(env) < 0) continue
    const key = `${toBase64Url(env.header.device)}/${toBase64Url(env.header.stream)}`
    if ((tips.get(key)?.header.seq ?? 0) < env.header.seq) tips.set(key, env)
  }
  // Ordered by the device's place among the honest and the stream's length, so
  // the pick depends on the seed, not on keys, hashes or Yjs's client ids
  // (random); a device's streams tie only after a reload, which the fuzz has not.
  const ordered = [...tips.values()].sort((a, b) => rank(a) - rank(b) || a.header.seq - b.header.seq || compareBytes(a.header.stream, b.header.stream))
  return ordered.length ? prng.oneOf(gen, ordered) : undefined
}

/** An envelope signed on an honest device's stream id, chained onto its last envelope. */
export async function hijack(gen: prng.PRNG, ctx: HostileContext): Promise<Attack | null> {
  const tip = honestTip(gen, ctx)
  if (!tip) return null
  const { stream, seq } = tip.header
  const client = deriveClientId(ctx.hostile.device.publicKey, stream)
  const plaintext = messageUpdate(client, `evil-hijack-${ctx.step}`, deviceIdOf(ctx.hostile.device))
  const env = await seal(ctx, header(ctx, stream, { seq: seq + 1, prev: tip.hash }), plaintext)
  return attack('hijack', [env], [inject(ctx, [env])], 'refuses')
}

/**
 * Two envelopes at one position of a stream of the hostile device: seq 1,
 * or seq 2 after a first envelope of honest content delivered on its own.
 * The two go out in one transaction: a real relay keeps the first and
 * refuses the second (4403), so no replica behind it applies one before
 * seeing the other; the simulated hub merges anything, and sending both at
 * once is what makes it deliver what one relay would.
 */
export async function equivocate(gen: prng.PRNG, ctx: HostileContext): Promise<Attack> {
  const stream = streamId(gen)
  const client = deriveClientId(ctx.hostile.device.publicKey, stream)
  const author = deviceIdOf(ctx.hostile.device)
  const doc = new Y.Doc()
  let at: { seq: number; prev: Uint8Array } = { seq: 1, prev: ZERO_HASH }
  const legit: string[] = []
  const sent: Uint8Array[][] = []
  if (prng.bool(gen)) {
    legit.push(`hostile-ok-first-${ctx.step}`)
    const first = await seal(ctx, header(ctx, stream), messageUpdate(client, legit[0]!, author, doc))
    sent.push(inject(ctx, [first]))
    at = { seq: 2, prev: first.hash }
  }
  const a = await seal(ctx, header(ctx, stream, at), messageUpdate(client, `evil-equiv-a-${ctx.step}`, author, fork(doc)))
  const b = await seal(ctx, header(ctx, stream, at), messageUpdate(client, `evil-equiv-b-${ctx.step}`, author, fork(doc)))
  sent.push(inject(ctx, [a, b]))
  return attack('equivocation', [a, b], sent, 'refuses', legit.length ? 'at seq 2' : 'at seq 1', legit)
}

/**
 * A snapshot of honest content of the hostile device whose covers claim an
 * honest stream: far ahead of its tip, at its tip with a wrong hash, or at
 * its tip with the right hash (while lacking the stream's content).
 */
export async function overclaim(gen: prng.PRNG, ctx: HostileContext): Promise<Attack | null> {
  const tip = honestTip(gen, ctx)
  if (!tip) return null
  const { device, stream, seq } = tip.header
  const claim = prng.oneOf(gen, [
    { device, stream, seq: seq + 1_000_000, hash: seededBytes(gen, 32) },
    { device, stream, seq, hash: seededBytes(gen, 32) },
    { device, stream, seq, hash: tip.hash },
  ])
  const own = streamId(gen)
  const id = `hostile-ok-snapshot-${ctx.step}`
  const plaintext = messageUpdate(deriveClientId(ctx.hostile.device.publicKey, own), id, deviceIdOf(ctx.hostile.device))
  const env = await seal(ctx, header(ctx, own, { kind: 'snapshot', clientIds: [], covers: [claim] }), plaintext)
  return { ...attack('overclaim', [env], [inject(ctx, [env])], 'passes', 'overclaim', [id]), claims: [claimOf(claim)] }
}

/**
 * A snapshot of nothing whose covers are copied from an honest snapshot the
 * hostile replica holds (or else name an honest stream's tip, with its real
 * hash), sent with the deletion of every log entry those covers chain down
 * to, in one update, as the relay's cover rule lets it: the honest content
 * is then in no log entry, until a replica that holds it re-publishes it.
 */
export async function copyCovers(gen: prng.PRNG, ctx: HostileContext): Promise<Attack | null> {
  const wire = ctx.hostile.engine.wire
  const honest = (d: Uint8Array) => ctx.honest.some((r) => equalBytes(r.device.publicKey, d))
  // In log order: the wire doc's client ids come from the seed.
  const snapshots = wire.envelopes().map(decodeEnvelope).filter((e) => e.header.kind === 'snapshot' && honest(e.header.device))
  let covers: EnvelopeHeader['covers']
  let variant: string
  if (snapshots.length > 0) {
    covers = prng.oneOf(gen, snapshots).header.covers
    variant = 'of an honest snapshot'
  } else {
    const tip = honestTip(gen, ctx)
    if (!tip) return null
    covers = [{ device: tip.header.device, stream: tip.header.stream, seq: tip.header.seq, hash: tip.hash }]
    variant = 'of an honest tip'
  }
  // Empty, or every honest struct the hostile replica holds with no deletion (a later joiner would see deleted items again).
  const undeleting = prng.bool(gen)
  if (undeleting) variant += ', holding every honest struct and no deletion'
  const plaintext = undeleting ? await honestStateUndeleted(ctx) : Y.encodeStateAsUpdate(new Y.Doc())
  const env = await seal(ctx, header(ctx, streamId(gen), { kind: 'snapshot', clientIds: [], covers }), plaintext)
  // Only honest entries: what the hostile device wrote itself must show (the fuzz checks it).
  const covered = planCompaction(ctx.session.sessionId, env, wire.envelopes())
  wire.replaceCovered(env.bytes, (bytes) => covered(bytes) && honest(decodeEnvelope(bytes).header.device), transportOrigin('hostile'))
  return { ...attack('copiedcovers', [env], [[env.bytes]], 'passes', variant), claims: covers.map(claimOf) }
}

/**
 * What the honest envelopes in the hostile replica's log hold, replayed
 * into a doc that keeps deleted content, with the delete set cut off: every
 * honest struct, and deleted ones alive again where an update still
 * carries their content. Only honest envelopes, so the snapshot carries
 * nothing the rules refuse (its deletions are what is wrong with it).
 */
async function honestStateUndeleted(ctx: HostileContext): Promise<Uint8Array> {
  const doc = new Y.Doc({ gc: false })
  for (const bytes of ctx.hostile.engine.wire.envelopes()) {
    let env: Envelope
    try {
      env = decodeEnvelope(bytes)
    } catch {
      continue
    }
    const h = env.header
    if (h.sessionId !== ctx.session.sessionId || (h.kind !== 'update' && h.kind !== 'snapshot') || !ctx.honest.some((r) => equalBytes(r.device.publicKey, h.device))) continue
    try {
      Y.applyUpdate(doc, await openEnvelope(env, ctx.hostile.engine.keys))
    } catch {
      // A key this device never held: that content is not replayed.
    }
  }
  return withoutDeletions(Y.encodeStateAsUpdate(doc))
}

/**
 * A Yjs v1 update with its delete set cut off, what a cheat can sign: the
 * update is its structs then its delete set (a count of clients, then per
 * client its id, a count of ranges and each range's clock and length, all
 * var-uints), so the delete set is its last that many bytes.
 */
export function withoutDeletions(update: Uint8Array): Uint8Array {
  type Decoded = { structs: unknown[]; ds: { clients: Map<number, Array<{ clock: number; len: number }>> } }
  const { structs, ds } = Y.decodeUpdate(update) as unknown as Decoded
  let dsBytes = varUintLength(ds.clients.size)
  for (const [client, ranges] of ds.clients) {
    dsBytes += varUintLength(client) + varUintLength(ranges.length)
    for (const { clock, len } of ranges) dsBytes += varUintLength(clock) + varUintLength(len)
  }
  const out = new Uint8Array(update.length - dsBytes + 1) // its last byte 0: a delete set of no clients
  out.set(update.subarray(0, update.length - dsBytes))
  const check = Y.decodeUpdate(out) as unknown as Decoded
  if (check.ds.clients.size !== 0 || check.structs.length !== structs.length) throw new Error('the delete set was not cut off cleanly')
  return out
}

function varUintLength(n: number): number {
  return encoding.encode((e) => encoding.writeVarUint(e, n)).length
}

/**
 * An update on a fresh stream, made against the hostile replica's doc,
 * naming an honest device as a message's author, an audit entry's actor or
 * a config write's device, or rewriting or deleting an audit entry or a
 * message. Null if there was nothing to rewrite.
 */
export async function forge(gen: prng.PRNG, ctx: HostileContext): Promise<Attack | null> {
  const stream = streamId(gen)
  const copy = new Y.Doc()
  copy.clientID = deriveClientId(ctx.hostile.device.publicKey, stream)
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(ctx.hostile.engine.session.doc))
  const before = Y.encodeStateVector(copy)
  const victim = deviceIdOf(prng.oneOf(gen, ctx.honest).device)
  const audit = copy.getMap<Record<string, unknown>>('audit')
  const history = copy.getMap('history')
  const as = new SessionDoc({ device: victim, mode: 'tab', doc: copy })
  try {
    switch (prng.int32(gen, 0, 5)) {
      case 0:
        as.appendMessage({ id: `evil-forged-${ctx.step}`, role: 'user', content: 'evil' })
        break
      case 1:
        as.appendAudit({ id: `evil-audit-${ctx.step}`, action: 'evil' })
        break
      case 2:
        as.setConfig('model', 'evil-model')
        break
      case 3: {
        const keys = [...audit.keys()].sort()
        if (keys.length === 0) return null
        const key = prng.oneOf(gen, keys)
        audit.set(key, { ...audit.get(key), actor: deviceIdOf(ctx.hostile.device), action: 'evil-rewrite' })
        break
      }
      case 4: {
        const keys = [...audit.keys()].sort()
        if (keys.length === 0) return null
        audit.delete(prng.oneOf(gen, keys))
        break
      }
      default: {
        const keys = [...history.keys()].sort()
        if (keys.length === 0) return null
        history.delete(prng.oneOf(gen, keys))
      }
    }
  } finally {
    as.destroy()
  }
  const env = await seal(ctx, header(ctx, stream), Y.encodeStateAsUpdate(copy, before))
  return attack('forged', [env], [inject(ctx, [env])], 'passes')
}

/** A reader sealing a message of its own, as an update or a snapshot. */
export async function readerWrite(gen: prng.PRNG, ctx: HostileContext): Promise<Attack> {
  const stream = streamId(gen)
  const plaintext = messageUpdate(deriveClientId(ctx.hostile.device.publicKey, stream), `evil-reader-${ctx.step}`, deviceIdOf(ctx.hostile.device))
  const h = prng.bool(gen) ? header(ctx, stream) : header(ctx, stream, { kind: 'snapshot', clientIds: [] })
  const env = await seal(ctx, h, plaintext)
  return attack('reader', [env], [inject(ctx, [env])], 'refuses', h.kind)
}

/**
 * A replay: an envelope the hostile device signed in another session it
 * belongs to, captured there and re-sent here verbatim; once the session
 * moved to a newer epoch (a device was removed), an envelope sealed under
 * the older epoch's key, which the hostile device still holds, dated now;
 * a message sealed for another session id with this session's key; or one
 * sealed under a key of an epoch this session never had, or under another
 * key posing as the current epoch's.
 */
export async function replay(gen: prng.PRNG, ctx: HostileContext): Promise<Attack> {
  const stream = streamId(gen)
  const plaintext = messageUpdate(deriveClientId(ctx.hostile.device.publicKey, stream), `evil-replay-${ctx.step}`, deviceIdOf(ctx.hostile.device))
  const epochs = ctx.hostile.engine.keys.epochs()
  const older = epochs.length > 1 ? ctx.hostile.engine.keys.get(Math.min(...epochs)) : undefined
  // Once the session has an older epoch, replaying under it is the likeliest: it is the rarest chance.
  let pick = older && prng.bool(gen) ? 2 : prng.int32(gen, 0, 4)
  if (pick === 0 && !ctx.elsewhere?.length) pick = 1 // no other session
  if (pick === 2 && !older) pick = 3 // the session has one epoch yet
  if (pick === 0) {
    const captured = prng.oneOf(gen, ctx.elsewhere!)
    return attack('replay', [decodeEnvelope(captured)], [inject(ctx, [captured])], 'refuses', 'from another session')
  }
  const [variant, relay, key, sessionId] =
    pick === 1
      ? (['for another session id', 'refuses', ctx.session.key, deriveSessionId(ctx.hostile.device.publicKey, seededBytes(gen, SESSION_NONCE_BYTES))] as const)
      : pick === 2
        ? (['older epoch', 'drops', older!, ctx.session.sessionId] as const)
        : pick === 3
          ? (['epoch never had', 'passes', ctx.foreign.nextEpoch, ctx.session.sessionId] as const)
          : (['wrong key', 'passes', ctx.foreign.sameEpoch, ctx.session.sessionId] as const)
  // Under the older epoch the message is the hostile device's own, and its engine, honest code,
  // re-seals what it signed under the current epoch (as any writer racing a removal): so it may
  // show, but only ever under the new key; the stale envelope itself is refused everywhere.
  const body = pick === 2 ? messageUpdate(deriveClientId(ctx.hostile.device.publicKey, stream), `hostile-stale-${ctx.step}`, deviceIdOf(ctx.hostile.device)) : plaintext
  // Dated after the removal: one dated at its very time is not stale by the rule (createdAt > start), and
  // passes everywhere alike; a replay in the step of the removal once was (relay hostile fuzz seed 976).
  const createdAt = (ctx.now?.() ?? 1) + (pick === 2 ? 1 : 0)
  const env = await seal(ctx, header(ctx, stream, { sessionId, createdAt }), body, key)
  return attack('replay', [env], [inject(ctx, [env])], relay, variant)
}

/**
 * Bytes that are no Yjs update, validly sealed: random bytes, or random
 * bytes behind a prefix that names the stream's own client (so they get
 * past the client-id check into Yjs).
 */
export async function garbage(gen: prng.PRNG, ctx: HostileContext): Promise<Attack> {
  const stream = streamId(gen)
  const client = deriveClientId(ctx.hostile.device.publicKey, stream)
  const tail = prng.uint8Array(gen, prng.int32(gen, 0, 48))
  let plaintext = tail
  if (prng.bool(gen)) {
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, 1)
    encoding.writeVarUint(e, prng.int32(gen, 1, 4))
    encoding.writeVarUint(e, client)
    encoding.writeUint8Array(e, tail)
    plaintext = encoding.toUint8Array(e)
  }
  const env = await seal(ctx, header(ctx, stream), plaintext)
  return attack('garbage', [env], [inject(ctx, [env])], 'passes')
}

/** Writes content the hostile device may: a message of its own through its engine. */
export function honestlyHostile(ctx: HostileContext): string | null {
  if (!ctx.hostile.engine.canWrite) return null
  const id = `hostile-ok-${ctx.hostile.name}-${ctx.step}`
  ctx.hostile.engine.session.appendMessage({ id, role: 'assistant', content: id, timestamp: 1 })
  return id
}
