import * as Y from 'yjs'
import { toRecord, type Mode, type SessionRecord } from '@kai-sync/model'
import { BoxKey, SessionKeyring, WebCryptoDeviceKey, type DeviceKey, type SessionKey } from '@kai-sync/crypto'
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

type EngineTuning = Partial<Pick<SyncEngineOptions, 'batchWindowMs' | 'compactAfter' | 'compactJitterMs' | 'maxBatchBytes' | 'now'>>

export interface SimSession {
  sessionId: string
  key: SessionKey
  owner: Replica
  replicas: Replica[]
  /** The relay: a plain Y.Doc with no key, merging ciphertext. */
  hub: SimNode
}

function track(r: Omit<Replica, 'rejections'>): Replica {
  const replica: Replica = { ...r, rejections: [] }
  r.engine.on('rejected', (x) => replica.rejections.push(x))
  return replica
}

/** Creates a session owned by a new device, behind a simulated relay. */
export async function createSimSession(net: SimNetwork, options: EngineTuning & { mode?: Mode } = {}): Promise<SimSession> {
  const { mode = 'desktop', ...tuning } = options
  const hub = net.add('relay', new Y.Doc())
  const device = await WebCryptoDeviceKey.generate()
  const box = await BoxKey.generate()
  const wire = new WireDoc()
  const engine = await createSession({ device, box, mode, agentId: 'agent', userId: 'user', wire, ...tuning })
  const owner = track({ name: 'r0', device, box, engine, node: net.add('r0', wire.doc), appended: new Set() })
  net.connect(owner.node, hub)
  return { sessionId: engine.sessionId, key: engine.keys.current, owner, replicas: [owner], hub }
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
  const device = sameDeviceAs?.device ?? (await WebCryptoDeviceKey.generate())
  const box = sameDeviceAs?.box ?? (await BoxKey.generate())
  // role null: a device the owner has not enrolled (it may enroll itself with an invite).
  if (!sameDeviceAs && role) await session.owner.engine.setRole(device.publicKey, role, { label: `device ${session.replicas.length}`, box: box.publicKey })
  const wire = new WireDoc()
  const engine = await SyncEngine.open({
    sessionId: session.sessionId,
    wire,
    device,
    box,
    keys: new SessionKeyring([session.key]),
    mode,
    ...tuning,
  })
  const name = `r${session.replicas.length}`
  const replica = track({ name, device, box, engine, node: net.add(name, wire.doc), appended: new Set() })
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
    if (net.pending === 0) {
      // Engines may have reacted to the last deliveries by sealing more.
      await Promise.all(replicas.map((r) => r.engine.whenIdle()))
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
