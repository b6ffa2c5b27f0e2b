import * as Y from 'yjs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ZERO_HASH, decodeEnvelope, equalBytes, newStreamId, sealEnvelope, type Envelope } from '@kai-sync/crypto'
import { planCompaction, type Rejection } from '@kai-sync/engine'
import { connectRelay } from '@kai-sync/providers'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { capability, closeDevice, eventually, memberDevice, ownerDevice, rawClient, updateFrame, wireOnRelay, type Device } from './testing/clients'
import { messagesOnRelay } from './testing/session-view'
import { craftUpdate } from './testing/forge'

// Issue 12: a snapshot that claims what it does not hold must not erase
// anything for later joiners. The relay sees only ciphertext, so it lets a
// member's empty snapshot with covers copied from an honest one delete that
// snapshot (the cover rule, update-guard.ts). The honest writer that holds
// the content reports the lie (over_claim) and seals a snapshot of its
// whole state, online at once, offline when it reconnects; a device joining
// afterwards through the relay shows everything. Through a spawned relay
// over real sockets.

const MESSAGES = ['m1', 'm2', 'm3']

let relay: RelayProcess
let a: Device
/** The cheating writer: only its key is used, its engine is closed (an honest engine would answer the lie too). */
let cheat: Device
let room: string
let overClaims: Rejection[]
let others: Device[]

beforeEach(async () => {
  relay = await spawnRelay()
  a = await ownerDevice(relay.url)
  room = a.engine.sessionId
  overClaims = []
  a.engine.on('rejected', (r) => r.code === 'over_claim' && overClaims.push(r))
  await a.relay.whenSynced()
  cheat = await memberDevice(relay.url, a, 'writer')
  closeDevice(cheat)
  others = []
  for (const id of MESSAGES) {
    a.engine.session.appendMessage({ id, role: 'user', content: `message ${id}` })
    await a.engine.flush()
  }
  expect(await a.engine.compact()).toBeGreaterThanOrEqual(MESSAGES.length)
  await a.relay.whenAcknowledged()
}, 60_000)

afterEach(async () => {
  for (const d of [a, ...others]) closeDevice(d)
  await relay.stop()
  relay.cleanup()
})

/** A's compaction as the relay holds it. */
async function honestSnapshot(): Promise<Envelope> {
  const snapshots = (await wireOnRelay(relay.url, room, a.key)).envelopes().map(decodeEnvelope).filter((e) => e.header.kind === 'snapshot' && equalBytes(e.header.device, a.key.publicKey))
  expect(snapshots).toHaveLength(1)
  return snapshots[0]!
}

/**
 * The cheat's attack over a raw connection: an empty snapshot with the
 * honest one's covers, replacing every log entry the cover rule lets it
 * (the honest snapshot among them), in one update. Resolves with the
 * connection's close code after `settled` (null: still open).
 */
async function attack(settled: (lie: Envelope) => Promise<void>): Promise<{ lie: Envelope; code: number | null }> {
  const honest = await honestSnapshot()
  const lie = await sealEnvelope({
    header: { kind: 'snapshot', sessionId: room, stream: newStreamId(), seq: 0, prev: ZERO_HASH, createdAt: Date.now(), clientIds: [], covers: honest.header.covers },
    plaintext: Y.encodeStateAsUpdate(new Y.Doc()),
    key: a.engine.keys.current,
    signer: cheat.key,
  })
  const base = await wireOnRelay(relay.url, room, a.key)
  const update = craftUpdate(base.doc, (w) => {
    const log = w.envelopes()
    const covered = planCompaction(room, lie, log)
    expect(covered(log.find((e) => equalBytes(e, honest.bytes))!)).toBe(true)
    w.replaceCovered(lie.bytes, covered, null)
  })
  const client = await rawClient(relay.url, room, await capability(cheat.key, room))
  try {
    client.send(updateFrame(update))
    await settled(lie)
    const code = await Promise.race([client.closed.then((c) => c.code), new Promise<null>((r) => setTimeout(() => r(null), 300))])
    return { lie, code }
  } finally {
    client.ws.close()
  }
}

/** A device enrolled now, joining through the relay alone: the messages it shows. */
async function joinerShows(expected: number): Promise<string[]> {
  const joiner = await memberDevice(relay.url, a, 'reader')
  others.push(joiner)
  await eventually(() => joiner.engine.session.messageIds().length >= expected, 15_000, `${expected} messages on the joiner`).catch(() => {})
  await joiner.engine.whenIdle()
  return [...joiner.engine.session.messageIds()]
}

async function logHolds(env: Envelope): Promise<boolean> {
  return (await wireOnRelay(relay.url, room, a.key)).envelopes().some((e) => equalBytes(e, env.bytes))
}

describe('an empty snapshot with copied covers, through a real relay', () => {
  it('the honest writer, online, reports it and re-publishes: a device joining afterwards shows all its messages', async () => {
    const honest = await honestSnapshot()
    const { lie, code } = await attack(() => eventually(() => overClaims.length > 0, 15_000, 'A to report the over-claim'))
    // The relay took the lie (today's cover rule) and relayed it to A.
    expect(code).toBeNull()
    expect(overClaims[0]!.device).toBe(Buffer.from(cheat.key.publicKey).toString('base64url'))
    await a.engine.whenIdle()
    await a.relay.whenAcknowledged()
    // The deletion stood: A's answer replaced the lie, not restored the old snapshot.
    expect(await logHolds(honest)).toBe(false)
    expect(await joinerShows(MESSAGES.length)).toEqual(MESSAGES)
    expect(await logHolds(lie)).toBe(false)
  }, 90_000)

  it('the honest writer, offline during the attack, re-publishes when it reconnects: a device joining afterwards shows all its messages', async () => {
    a.relay.destroy()
    const honest = await honestSnapshot()
    const { lie, code } = await attack((lie) => eventually(async () => (await logHolds(lie)) && !(await logHolds(honest)), 15_000, 'the lie in the relay\'s log'))
    expect(code).toBeNull()
    // Between the lie and the heal, the relay holds none of A's messages.
    expect(await messagesOnRelay(relay.url, room, cheat.key, a.engine.keys.current)).toEqual([])
    a.relay = await connectRelay(a.wire, relay.url, () => capability(a.key, room), a.engine)
    await eventually(() => overClaims.length > 0, 15_000, 'A to report the over-claim once back')
    await a.engine.whenIdle()
    await a.relay.whenAcknowledged()
    expect(await joinerShows(MESSAGES.length)).toEqual(MESSAGES)
    expect(await logHolds(lie)).toBe(false)
  }, 90_000)
})
