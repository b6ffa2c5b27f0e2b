import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import { SessionKeyring, WebCryptoDeviceKey } from '@kai-sync/crypto'
import { SyncEngine, deviceIdOf } from '../sync-engine'
import { createSession } from '../session'
import { WireDoc } from '../wire-doc'
import { SimNetwork } from './sim-network'
import { addReplica, createSimSession, recordOf, settle, type Replica, type SimHub } from './replicas'
import { seededRandom } from './seed'
import {
  ATTACK_KINDS,
  REFUSED_AS,
  equivocate,
  forge,
  foreignKeys,
  garbage,
  hijack,
  honestlyHostile,
  overclaim,
  copyCovers,
  inheritsClaims,
  readerWrite,
  replay,
  type Attack,
  type AttackKind,
  type HostileContext,
} from './hostile'

// One schedule of issue 12's hostile fuzz: 3 to 6 members, 1 or 2 of them
// hostile (writers or readers), on a lossy, duplicating, reordering,
// partitioning network with compaction. Honest members edit; hostile ones
// write honest content of their own ('hostile-ok-*') and, at random points,
// hijack honest streams, equivocate, send over-claiming snapshots, forge
// authorship, write as readers, replay envelopes sealed for another session
// or epoch key, and seal garbage (hostile.ts). After healing, every honest
// replica shows the same record, holds every message an honest replica
// appended and every honest audit entry, shows nothing an attack crafted
// ('evil-*'), holds back nothing an honest device signed, and refused
// nothing but attacks, each with its attack's code. The hub is a plain
// Y.Doc merging anything, or a relay's guard (a SimGuard: apps/relay's
// hostile-relay fuzz runs these schedules through a real Room).
//
// Every choice and every identity comes from the seed (device keys, stream
// ids, Yjs client ids, the session key, the clock), so a seed replays its
// schedule exactly.

const WRITER_ATTACKS = [hijack, equivocate, overclaim, copyCovers, forge, replay, garbage]

function honestEdit(gen: prng.PRNG, r: Replica, step: number, audits: Set<string>): void {
  const s = r.engine.session
  const id = `${r.name}-${step}`
  const ids = [...s.messageIds()].sort()
  switch (prng.int32(gen, 0, 4)) {
    case 0:
      s.appendMessage({ id, role: 'user', content: prng.word(gen, 1, 12), timestamp: prng.int32(gen, 0, 50) })
      r.appended.add(id)
      break
    case 1: {
      const target = ids.length ? prng.oneOf(gen, [...ids]) : undefined
      if (target) s.streamText(target, prng.word(gen, 1, 6))
      break
    }
    case 2:
      s.setConfig('model', prng.oneOf(gen, ['model-a', 'model-b']))
      break
    case 3:
      s.appendAudit({ id: `audit-${id}`, action: 'tool.run', timestamp: prng.int32(gen, 0, 50) })
      audits.add(`audit-${id}`)
      break
    default:
      s.addMemory({ id: `memory-${id}`, data: { note: prng.word(gen, 1, 8) } })
  }
}

/**
 * Per attack: tried; refused by every honest replica with its code; the
 * rest, never applied anywhere, are held somewhere (a gap whose envelope was
 * compacted away, a key that never comes) or left the log before reaching
 * every replica. An overclaiming snapshot is applied, never refused.
 */
export type AttackCounts = Record<AttackKind, { tried: number; refused: number; unrefused: number }>
type Counts = AttackCounts
export const emptyAttackCounts = (): Counts => Object.fromEntries(ATTACK_KINDS.map((k) => [k, { tried: 0, refused: 0, unrefused: 0 }])) as Counts

/** What a schedule did, for replaying a seed: its choices step by step, its attacks' verdicts, and the record the honest replicas agree on. */
export interface HostileSchedule {
  trace: string[]
  counts: Counts
  record: string
  /** The Yjs state vectors of an honest replica's session and wire docs: which client ids wrote how much. */
  state: string
  /** Every attack, in order. */
  attacks: Attack[]
  /** Its shape, for the totals. */
  shape: { members: number; hostile: number; readers: number; rotation: boolean; messages: number }
}

/** The schedule's state once it settled, for a caller's own checks (the relay's guard). */
export interface SettledSchedule {
  context: string
  honest: Replica[]
  hostiles: Replica[]
  leaver: Replica | null
  attacks: Attack[]
  /** Messages hostile writers wrote that were theirs to write. */
  legit: Set<string>
}

export interface HostileScheduleOptions {
  /** The hub every member connects to; a plain Y.Doc by default. */
  hub?: SimHub
  /**
   * A relay's guard may rightly shut out a hostile member (its later
   * content builds on what the relay refused): then the messages hostile
   * writers may write are not required to show (`settled` checks them).
   */
  hostileMayBeShutOut?: boolean
  /** Called after the invariants hold, before the replicas are destroyed. */
  settled?: (s: SettledSchedule) => void | Promise<void>
  /**
   * The writer removed mid-run answers over-claims like any honest device.
   * Off behind a hub that merges anything: there a snapshot it seals after
   * its removal, unaware, is refused everywhere while its deletions stand
   * (seed 1754 then loses a hostile writer's own message); a relay refuses
   * both, so the relay-backed fuzz turns it on.
   */
  removedWriterAnswers?: boolean
}

function check(ok: boolean, why: string): void {
  if (!ok) throw new Error(why)
}

function checkEqual(actual: unknown, expected: unknown, why: string): void {
  const a = JSON.stringify(actual)
  const e = JSON.stringify(expected)
  if (a !== e) throw new Error(`${why}: ${a.slice(0, 400)} is not ${e.slice(0, 400)}`)
}

/** Runs the schedule of `seed`; throws, naming the seed, if an invariant breaks. */
export async function runHostileSchedule(seed: number, options: HostileScheduleOptions = {}): Promise<HostileSchedule> {
  try {
    return await runSchedule(seed, options)
  } catch (e) {
    // Every failure names its seed, an error thrown by the engine or settle() too.
    const message = e instanceof Error ? e.message : String(e)
    throw new Error(message.includes(`seed ${seed} `) ? message : `seed ${seed} (replay with KAI_FUZZ_SEED=${seed}): ${message}`, { cause: e })
  }
}

async function runSchedule(seed: number, options: HostileScheduleOptions): Promise<HostileSchedule> {
  const { gen, replay: replayLine } = seededRandom(seed)
  // Identities from a stream of their own, so what they draw never shifts the schedule's choices.
  const ids = prng.create(seed * 0x9e3779b1 + 1)
  const context = `seed ${seed} (${replayLine})`
  // The session's clock: simulated, so epoch starts and createdAt never depend on when the run happens.
  let clock = 1_000_000
  const now = () => clock
  const net = new SimNetwork(gen, { reorder: prng.real53(gen) * 0.5, drop: prng.real53(gen) * 0.15, duplicate: prng.real53(gen) * 0.15 })
  const tuning = { batchWindowMs: 60_000, compactAfter: prng.bool(gen) ? prng.int32(gen, 3, 12) : null, compactJitterMs: 0, now }
  const members = prng.int32(gen, 3, 6)
  const hostileCount = prng.int32(gen, 1, 2)
  const session = await createSimSession(net, { ...tuning, ids, ...(options.hub ? { hub: options.hub } : {}) })
  // After each step: every engine has processed what reached it and finished the seals it began,
  // and a guarding hub has answered, so what the next step sees depends on the seed, not on timing.
  const guarded = net.guarded
  const quiet = async () => {
    await Promise.all(session.replicas.map((r) => r.engine.whenQuiet()))
    if (guarded) await net.whenIdle()
  }
  // The owner is honest; the last `hostileCount` members are hostile, some of them readers.
  const roles = Array.from({ length: members - 1 }, (_, i) => (i >= members - 1 - hostileCount && prng.real53(gen) < 0.3 ? 'reader' : 'writer') as 'reader' | 'writer')
  // A cheating member does not answer over-claims (the honest ones must);
  // nor, unless told (removedWriterAnswers), the writer removed later, see below.
  for (const [i, role] of roles.entries()) await addReplica(net, session, { ...tuning, role, answerOverClaims: i < members - 1 - hostileCount })
  // In half the schedules one more writer, who writes nothing, is removed at a random step: the session moves to epoch 1.
  // It writes nothing of its own, and answers no over-claim unless told: a
  // snapshot it seals after its removal, unaware, is refused everywhere
  // while the deletions it made stand on a hub that merges anything (see
  // docs/threat-model.md, Limits).
  const leaver = prng.bool(gen) ? await addReplica(net, session, { ...tuning, role: 'writer', answerOverClaims: options.removedWriterAnswers === true }) : null
  const replicas = session.replicas
  const active = replicas.slice(0, members)
  const hostiles = active.slice(members - hostileCount)
  const honest = active.slice(0, members - hostileCount)
  const hostileIds = new Set(hostiles.map((h) => deviceIdOf(h.device)))
  const foreign = await foreignKeys(session)
  // Each hostile device also owns another session; what it signed there it replays here.
  const elsewhere = new Map<Replica, Uint8Array[]>()
  for (const h of hostiles) elsewhere.set(h, await otherSession(h, now))
  const audits = new Set<string>()
  const attacks: Attack[] = []
  /** What hostile writers wrote that is theirs to write: it shows everywhere like any writer's. */
  const legit = new Set<string>()
  const trace: string[] = []
  try {
    await settle(net, replicas)
    const steps = prng.int32(gen, 20, 60)
    const removeAt = leaver ? prng.int32(gen, 2, steps - 2) : -1
    for (let step = 0; step < steps; step++) {
      clock += 10
      if (step === removeAt) {
        await session.owner.engine.removeDevice(leaver!.device.publicKey)
        // Writers race the removal unless it reaches everyone at once (then the hostile ones hold the old key and the new).
        const heard = prng.bool(gen)
        if (heard) await settle(net, replicas)
        trace.push(`${step} remove ${leaver!.name}${heard ? ', heard by all' : ''}`)
      }
      const action = prng.real53(gen)
      if (action < 0.3) {
        const r = prng.oneOf(gen, active)
        if (hostileIds.has(deviceIdOf(r.device))) {
          const id = honestlyHostile({ session, hostile: r, honest, foreign, step })
          if (id) legit.add(id)
        } else honestEdit(gen, r, step, audits)
        trace.push(`${step} edit ${r.name}`)
      } else if (action < 0.5) {
        const hostile = prng.oneOf(gen, hostiles)
        const ctx: HostileContext = { session, hostile, honest, foreign, elsewhere: elsewhere.get(hostile), now, step }
        const made = hostile.engine.canWrite ? await prng.oneOf(gen, WRITER_ATTACKS)(gen, ctx) : await readerWrite(gen, ctx)
        if (made) attacks.push(made)
        for (const id of made?.legit ?? []) legit.add(id)
        trace.push(`${step} attack ${hostile.name} ${made ? `${made.kind} (${made.variant})` : 'none'}`)
        // Half the time the network heals at once: then no honest compaction but the answer
        // re-publishes what the copied covers deleted before a device joins.
        if (made?.kind === 'copiedcovers' && prng.bool(gen)) {
          await settle(net, replicas)
          await checkLateJoiner(`${context}, step ${step}`, session.sessionId, honest)
          trace.push(`${step} settle, a device joins`)
        }
      } else if (action < 0.75) {
        let delivered = 0
        for (let i = prng.int32(gen, 1, 8); i > 0 && net.step(); i--) delivered++
        trace.push(`${step} deliver ${delivered}`)
      } else if (action < 0.88) {
        const r = prng.oneOf(gen, active)
        await r.engine.flush()
        trace.push(`${step} flush ${r.name}`)
      } else if (action < 0.92) {
        const r = prng.oneOf(gen, active)
        await r.engine.compact()
        trace.push(`${step} compact ${r.name}`)
      } else if (action < 0.95) {
        net.cutRandomLink()
        trace.push(`${step} cut`)
      } else {
        const r = prng.oneOf(gen, active)
        await r.engine.whenIdle()
        trace.push(`${step} idle ${r.name}`)
      }
      await quiet()
    }
    await settle(net, replicas)
    const counts = checkInvariants(context, honest, hostileIds, audits, attacks, options.hostileMayBeShutOut ? new Set() : legit, leaver ? deviceIdOf(leaver.device) : null)
    await checkLateJoiner(context, session.sessionId, honest)
    await options.settled?.({ context, honest, hostiles, leaver, attacks, legit })
    const shape = { members, hostile: hostileCount, readers: hostiles.filter((h) => !h.engine.canWrite).length, rotation: leaver !== null, messages: honest[0]!.engine.session.messageIds().length }
    const record = normalized(JSON.stringify(recordOf(honest[0]!)), session.sessionId, replicas)
    return { trace, counts, record, state: stateOf(honest[0]!), attacks, shape }
  } finally {
    for (const r of replicas) r.engine.destroy()
  }
}

/**
 * A device that joins after healing and gets only the honest log (the
 * first honest replica's wire doc, as a relay would serve it) shows every
 * message an honest replica appended: what an over-claim made the log lose
 * was re-published there.
 */
async function checkLateJoiner(context: string, sessionId: string, honest: Replica[]): Promise<void> {
  const from = honest[0]!.engine
  const wire = new WireDoc()
  Y.applyUpdate(wire.doc, Y.encodeStateAsUpdate(from.wire.doc))
  const keys = new SessionKeyring(from.keys.epochs().map((e) => from.keys.get(e)!))
  const late = await SyncEngine.open({ sessionId, wire, device: await WebCryptoDeviceKey.generate(), keys, mode: 'tab', compactAfter: null })
  try {
    await late.whenIdle()
    const ids = new Set(late.session.messageIds())
    for (const r of honest) for (const id of r.appended) check(ids.has(id), `${context}: message ${id} appended on ${r.name} is not in the log a late joiner gets`)
    // Nor a config write that a later one deleted (a snapshot that leaves deletions out would show it again).
    const heads = (e: SyncEngine) => e.session.configRegister.heads('model').map((w) => w.hlc)
    const live = new Set(heads(from))
    for (const hlc of heads(late)) check(live.has(hlc), `${context}: a late joiner shows config write ${hlc} that ${honest[0]!.name} does not (superseded, or never written)`)
  } finally {
    late.destroy()
  }
}

/** Another session the hostile device owns, with a message in it: the envelopes it signed there. */
async function otherSession(hostile: Replica, now: () => number): Promise<Uint8Array[]> {
  const engine = await createSession({ device: hostile.device, box: hostile.box, mode: 'tab', agentId: 'agent', userId: 'user', wire: new WireDoc(), compactAfter: null, now })
  try {
    engine.session.appendMessage({ id: 'evil-elsewhere', role: 'user', content: 'sealed for another session', timestamp: 1 })
    await engine.flush()
    return engine.wire.envelopes()
  } finally {
    engine.destroy()
  }
}

/** A record with the run's random names (device keys, the session id) replaced by the replicas' names, to compare two runs of one seed. */
function normalized(record: string, sessionId: string, replicas: Replica[]): string {
  let out = record.replaceAll(sessionId, 'session')
  for (const r of replicas) out = out.replaceAll(deviceIdOf(r.device), r.name)
  return out
}

/** A replica's Yjs state vectors, sorted: two runs of one seed must write under the same client ids, as much. */
function stateOf(r: Replica): string {
  const sv = (doc: Y.Doc) => [...Y.decodeStateVector(Y.encodeStateVector(doc))].sort((a, b) => a[0] - b[0])
  return JSON.stringify({ session: sv(r.engine.session.doc), wire: sv(r.engine.wire.doc) })
}

function checkInvariants(context: string, honest: Replica[], hostileIds: Set<string>, audits: Set<string>, attacks: Attack[], legit: Set<string>, leaver: string | null): Counts {
  const byPosition = new Map<string, Attack>()
  for (const a of attacks) for (const p of a.positions) byPosition.set(p, a)
  const expected = JSON.stringify(recordOf(honest[0]!))
  checkEqual(expected.match(/evil-[a-z0-9-]*/g) ?? [], [], `${context}: an attack shows on ${honest[0]!.name}`)
  const claimed = attacks.flatMap((a) => a.claims ?? [])
  const refusedEverywhere = new Map<Attack, number>()
  for (const r of honest) {
    check(JSON.stringify(recordOf(r)) === expected, `${context}: ${r.name} differs from ${honest[0]!.name}`)
    checkEqual(r.engine.heldSigners().filter((d) => !hostileIds.has(d) && d !== leaver), [], `${context}: ${r.name} holds honest envelopes`)
    const refusedHere = new Set<Attack>()
    for (const x of r.rejections.filter((x) => !x.held)) {
      const attack = x.device && x.stream && x.seq !== undefined ? byPosition.get(`${x.device}/${x.stream}/${x.seq}`) : undefined
      // A writer's engine that sealed under the old epoch before it heard of the removal, an honest
      // or a hostile one writing its own: refused, then re-sealed (nothing is lost: checked below).
      if (x.code === 'stale_epoch' && !attack) continue
      // The removed device's engine compacting before it heard of its removal: refused, rightly.
      if (x.device === leaver && x.code === 'unauthorized_signer') continue
      // A snapshot sealed by an engine that took an over-claim's covers in before the content they name
      // reached it: it claims those positions (or later ones of their streams), and is answered like the over-claim.
      if (x.code === 'over_claim' && !attack && inheritsClaims(x.message, claimed)) continue
      const what = `${context}: ${r.name} refused ${x.code} (${x.message}) from ${x.device && hostileIds.has(x.device) ? 'a hostile' : 'an honest'} device`
      check(attack !== undefined, `${what}, not an attack`)
      // Any attack a hostile device sealed under the old epoch before it heard of the new one is stale too.
      check([...REFUSED_AS[attack!.kind], 'stale_epoch'].includes(x.code), `${what} in a ${attack!.kind} attack`)
      refusedHere.add(attack!)
    }
    for (const a of refusedHere) refusedEverywhere.set(a, (refusedEverywhere.get(a) ?? 0) + 1)
  }
  const ids = new Set(honest[0]!.engine.session.messageIds())
  for (const r of honest) for (const id of r.appended) check(ids.has(id), `${context}: message ${id} appended on ${r.name} is lost`)
  for (const id of legit) check(ids.has(id), `${context}: message ${id}, a hostile writer's own, is lost`)
  const record = recordOf(honest[0]!)
  for (const id of audits) check(record.audit.some((a) => a.id === id), `${context}: audit ${id} lost`)
  const counts = emptyAttackCounts()
  for (const a of attacks) {
    counts[a.kind].tried++
    if (refusedEverywhere.get(a) === honest.length) counts[a.kind].refused++
    // An over-claim is reported only where the content it claims is held, and must hide nothing (checked above).
    else if (a.kind !== 'overclaim' && a.kind !== 'copiedcovers') counts[a.kind].unrefused++
  }
  return counts
}
