import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import { type Mode, type SessionRecord } from '@kai-sync/model'
import { toRecord } from '@kai-sync/model/record'
import { BoxKey, STREAM_BYTES, SessionKey, SessionKeyring, WebCryptoDeviceKey, type DeviceKey } from '@kai-sync/crypto'
import { WireDoc } from '../wire-doc'
import { SyncEngine, type Rejection, type SyncEngineOptions } from '../sync-engine'
import { createSession } from '../session'
import type { SimNetwork, SimNode } from './sim-network'

/** One JS context holding the session: a device key, a wire doc, an engine. */
export interface Replica {
  name: string
  device: DeviceKey
  box: BoxKey
  engine: SyncEngine
  node: SimNode
  /** Ids of every message this replica appended: none may be lost. */
  appended: Set<string>
  rejections: Rejection[]
}

type EngineTuning = Partial<Pick<SyncEngineOptions, 'batchWindowMs' | 'compactAfter' | 'compactJitterMs' | 'maxBatchBytes' | 'now' | 'answerOverClaims' | 'dropped'>>

export interface SimSession {
  sessionId: string
  key: SessionKey
  owner: Replica
  replicas: Replica[]
  /** The relay: a plain Y.Doc with no key, merging ciphertext, or a guard that checks what it stores (SimGuard). */
  hub: SimNode
  /** Where device keys, stream ids, Yjs client ids and the first session key come from, if from a seed. */
  ids?: prng.PRNG
}

/**
 * What decides a schedule's outcome besides the schedule itself: device
 * keys (device ids break clock ties), stream ids (they fix the Yjs client
 * ids that order concurrent edits), the wire doc's client id (the order of
 * concurrent log entries) and the session key. From `ids` when given, so a
 * seed replays exactly; random otherwise. (Box keys, the genesis nonce and
 * later epochs' keys stay random: they change bytes, never an order.)
 */
interface Identity {
  device: DeviceKey
  wire: WireDoc
  tuning: { newStreamId?: () => Uint8Array }
}

/** An Ed25519 private key's PKCS#8 form (RFC 8410): a fixed prefix, then its 32-byte seed. */
function ed25519Pkcs8(seed: Uint8Array): Uint8Array {
  const prefix = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]
  return new Uint8Array([...prefix, ...seed])
}

async function identity(ids: prng.PRNG | undefined, device?: DeviceKey): Promise<Identity> {
  if (!ids) return { device: device ?? (await WebCryptoDeviceKey.generate()), wire: new WireDoc(), tuning: {} }
  const doc = new Y.Doc()
  doc.clientID = prng.uint32(ids, 0, 0x3fffffff)
  return {
    device: device ?? (await WebCryptoDeviceKey.fromPkcs8(ed25519Pkcs8(prng.uint8Array(ids, 32)))),
    wire: new WireDoc(doc),
    tuning: { newStreamId: () => prng.uint8Array(ids, STREAM_BYTES) },
  }
}

function track(r: Omit<Replica, 'rejections'>): Replica {
  const replica: Replica = { ...r, rejections: [] }
  r.engine.on('rejected', (x) => replica.rejections.push(x))
  return replica
}

/** Makes the hub of a session once its id is known (a relay's room is named by it). */
export type SimHub = (net: SimNetwork, sessionId: string) => SimNode | Promise<SimNode>

/** Creates a session owned by a new device, behind a simulated relay. */
export async function createSimSession(
  net: SimNetwork,
  options: EngineTuning & { mode?: Mode; ids?: prng.PRNG; hub?: SimHub } = {},
): Promise<SimSession> {
  const { mode = 'desktop', ids, hub: makeHub, ...tuning } = options
  const { device, wire, tuning: seeded } = await identity(ids)
  const box = await BoxKey.generate()
  const key = ids ? await SessionKey.fromRaw(0, prng.uint8Array(ids, 32), { extractable: true }) : undefined
  const engine = await createSession({ device, box, mode, agentId: 'agent', userId: 'user', wire, ...(key ? { key } : {}), ...seeded, ...tuning })
  const hub = makeHub ? await makeHub(net, engine.sessionId) : net.add('relay', new Y.Doc())
  const owner = track({ name: 'r0', device, box, engine, node: net.add('r0', wire.doc, device.publicKey), appended: new Set() })
  net.connect(owner.node, hub)
  return { sessionId: engine.sessionId, key: engine.keys.current, owner, replicas: [owner], hub, ...(ids ? { ids } : {}) }
}

/**
 * Adds a replica: a new device enrolled by the owner as `role`, or another
 * context (tab, side panel) of an existing replica's device.
 */
export async function addReplica(
  net: SimNetwork,
  session: SimSession,
  options: EngineTuning & { sameDeviceAs?: Replica; role?: 'writer' | 'reader' | null; mode?: Mode; now?: () => number } = {},
): Promise<Replica> {
  const { sameDeviceAs, role = 'writer', mode = 'tab', ...tuning } = options
  const { device, wire, tuning: seeded } = await identity(session.ids, sameDeviceAs?.device)
  const box = sameDeviceAs?.box ?? (await BoxKey.generate())
  // role null: a device the owner has not enrolled (it may enroll itself with an invite).
  if (!sameDeviceAs && role) await session.owner.engine.setRole(device.publicKey, role, { label: `device ${session.replicas.length}`, box: box.publicKey })
  const engine = await SyncEngine.open({
    sessionId: session.sessionId,
    wire,
    device,
    box,
    keys: new SessionKeyring([session.key]),
    mode,
    ...seeded,
    ...tuning,
  })
  const name = `r${session.replicas.length}`
  const replica = track({ name, device, box, engine, node: net.add(name, wire.doc, device.publicKey), appended: new Set() })
  net.connect(replica.node, session.hub)
  // Contexts of one device also talk directly (BroadcastChannel).
  if (sameDeviceAs) net.connect(replica.node, sameDeviceAs.node)
  session.replicas.push(replica)
  return replica
}

/** Heals the network and runs every replica until nothing is left to deliver or process. */
export async function settle(net: SimNetwork, replicas: Replica[], maxRounds = 200): Promise<void> {
  net.healAll()
  for (let round = 0; round < maxRounds; round++) {
    await Promise.all(replicas.map((r) => r.engine.whenIdle()))
    await net.whenIdle()
    if (net.pending === 0) {
      // Engines may have reacted to the last deliveries by sealing more.
      await Promise.all(replicas.map((r) => r.engine.whenIdle()))
      await net.whenIdle()
      if (net.pending === 0) return
    }
    net.flush()
  }
  throw new Error(`replicas did not settle within ${maxRounds} rounds`)
}

/** The record every replica should agree on. */
export function recordOf(replica: Replica): SessionRecord {
  return toRecord(replica.engine.session)
}

/**
 * Throws, describing the first difference, unless every replica shows the
 * same record, holds every message any replica appended, holds nothing back
 * and rejected nothing for good.
 */
export function assertConverged(replicas: Replica[], context = ''): void {
  const fail = (why: string) => {
    throw new Error(`${context}${context ? ': ' : ''}${why}`)
  }
  const first = replicas[0]!
  const expected = JSON.stringify(recordOf(first))
  for (const r of replicas) {
    const actual = JSON.stringify(recordOf(r))
    if (actual !== expected) fail(`${r.name} differs from ${first.name}:\n${firstDifference(expected, actual)}`)
    if (r.engine.status.held > 0) fail(`${r.name} still holds ${r.engine.status.held} envelopes`)
    // Holds are expected on a reordering network; a final rejection is not.
    const rejected = r.rejections.filter((x) => !x.held)
    if (rejected.length > 0) fail(`${r.name} rejected ${rejected.map((x) => `${x.code} (${x.message})`).join(', ')}`)
  }
  const ids = new Set(first.engine.session.messageIds())
  for (const r of replicas) for (const id of r.appended) if (!ids.has(id)) fail(`message ${id} appended on ${r.name} is lost`)
}

function firstDifference(a: string, b: string): string {
  let i = 0
  while (i < a.length && a[i] === b[i]) i++
  return `  expected …${a.slice(Math.max(0, i - 80), i + 80)}…\n  actual   …${b.slice(Math.max(0, i - 80), i + 80)}…`
}
