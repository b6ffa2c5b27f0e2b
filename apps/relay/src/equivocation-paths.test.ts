import * as Y from 'yjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ZERO_HASH, equalBytes, newStreamId, toBase64Url, type Envelope } from '@kai-sync/crypto'
import { deviceIdOf } from '@kai-sync/engine'
import { closeDevice, eventually, updateFrame, wireOnRelay } from './testing/clients'
import {
  appendAs,
  cheatOn,
  crossRelaySession,
  fork,
  freshReplica,
  message,
  refusals,
  sleep,
  startFederatedPair,
  startNodePair,
  type FederatedPair,
  type NodePair,
  type Relays,
  type Replica,
} from './testing/cross-relay'

// Issue 12, item 1, through two relays: a cheating writer signs two
// envelopes at one position of its stream and gives each to a different
// relay first, while the two relays cannot hear each other (Redis paused
// for two nodes of one deployment; the peer links cut for two federated
// relays). Through one relay this is refused (stream-integrity.test.ts);
// here each relay takes the one it got. Once they hear each other again,
// every honest replica on either relay must freeze the stream at that
// position and report both hashes as `equivocation`, as a replica given
// both does (cheating-member.test.ts), and the honest streams must keep
// flowing between the relays. The cheat sends its two either as one Yjs
// item id (one wire client and clock: each relay already holds an item
// there when the other's arrives) or as two.

/**
 * The attack and what a user relies on after it. Honest: the owner and a
 * writer on relay A, a writer and a reader on relay B, the writers writing
 * throughout. The cheat's seq 1 reaches everyone; its two seq 2 envelopes
 * go one to each relay while they are apart.
 */
async function equivocateAcross(relays: Relays, oneItemId: boolean): Promise<void> {
  const { a, b } = relays
  const { owner, writerB, replicas, cheat, room, honest, writeRound } = await crossRelaySession(relays)
  const fresh: Replica[] = []
  const refusedBefore = await Promise.all([refusals(a), refusals(b)])
  try {
    for (let i = 0; i < 3; i++) await writeRound(`before${i}`)
    const [toA, toB] = await Promise.all([cheatOn(a.url, room, cheat), cheatOn(b.url, room, cheat)])
    const stream = newStreamId()
    const state = new Y.Doc()
    const zero = await message(owner, cheat, stream, 'cheat-zero', 1, ZERO_HASH, state)
    const one = await message(owner, cheat, stream, 'cheat-one', 2, zero.hash, fork(state))
    const two = await message(owner, cheat, stream, 'cheat-two', 2, zero.hash, fork(state))
    const wireClient = 0x5eed0000 + Math.floor(Math.random() * 0xffff)
    toA.send(updateFrame(appendAs(toA.doc, wireClient - 1, zero)))
    await eventually(() => replicas.every((r) => r.engine.session.message('cheat-zero') !== undefined), 10_000, 'the cheat\'s seq 1 everywhere')

    await relays.partition()
    const holds = (r: Replica, env: Envelope) => r.wire.envelopes().some((e) => equalBytes(e, env.bytes))
    try {
      toA.send(updateFrame(appendAs(toA.doc, wireClient, one)))
      toB.send(updateFrame(appendAs(toB.doc, oneItemId ? wireClient : wireClient + 1, two)))
      await writeRound('apart')
      await eventually(() => holds(owner, one) && holds(writerB, two), 10_000, 'each relay to take the envelope it got first')
      await sleep(300)
    } finally {
      await relays.heal()
    }
    for (let i = 0; i < 3; i++) await writeRound(`after${i}`)
    // Honest streams flow between the relays again.
    const missing = (r: Replica) => honest.filter((id) => r.engine.session.message(id) === undefined)
    await eventually(() => replicas.every((r) => missing(r).length === 0), 20_000, 'every honest message at every replica').catch(() => {})
    const frozen = (r: Replica) => r.engine.ledger.frozenAt({ device: cheat.publicKey, stream })?.seq
    await eventually(() => replicas.every((r) => frozen(r) === 2), 5000, 'the stream frozen everywhere').catch(() => {})
    fresh.push(await freshReplica(a.url, owner, 'fresh on A', honest.length + 1), await freshReplica(b.url, owner, 'fresh on B', honest.length + 1))

    const both = [toBase64Url(one.hash), toBase64Url(two.hash)]
    const verdict = (r: Replica) => ({
      replica: r.name,
      missingHonest: missing(r),
      cheatZero: r.engine.session.message('cheat-zero') !== undefined,
      frozenAt: frozen(r),
      reportsBothHashes: both.every((h) => r.rejections.some((x) => x.code === 'equivocation' && x.message.includes(h))),
      // Its rival's verdict, and the copy of one a relay appended as its own (a replay).
      refusedOnlyTheCheat: r.rejections.every((x) => x.held || (x.device === deviceIdOf(cheat) && ['equivocation', 'replay', 'fork'].includes(x.code))),
    })
    for (const r of [...replicas, ...fresh]) {
      expect(verdict(r)).toEqual({ replica: r.name, missingHonest: [], cheatZero: true, frozenAt: 2, reportsBothHashes: true, refusedOnlyTheCheat: true })
      // At most one of the two: what a replica applied before the rival arrived stays (Yjs cannot take it back).
      expect(['cheat-one', 'cheat-two'].filter((id) => r.engine.session.message(id) !== undefined).length).toBeLessThanOrEqual(1)
    }
    // Every honest replica shows the same honest record; a replica that
    // got both at once (a fresh one, on either relay) applied neither.
    const honestRecord = (r: Replica) => r.engine.session.messageIds().filter((id) => !id.startsWith('cheat-one') && !id.startsWith('cheat-two'))
    for (const r of [...replicas, ...fresh]) expect(honestRecord(r)).toEqual(honestRecord(owner))
    for (const r of fresh) expect(r.engine.session.messageIds()).toEqual(fresh[0]!.engine.session.messageIds())
    expect(fresh[0]!.engine.session.message('cheat-one') ?? fresh[0]!.engine.session.message('cheat-two')).toBeUndefined()
    // Each relay serves both envelopes: whoever syncs through either judges the same.
    for (const url of [a.url, b.url]) {
      const served = (await wireOnRelay(url, room, owner.key)).envelopes()
      expect([one, two].map((env) => served.some((e) => equalBytes(e, env.bytes)))).toEqual([true, true])
    }
    // Nobody was refused: not the cheat (each relay took the one it got first), nor a peer link.
    expect(await Promise.all([refusals(a), refusals(b)])).toEqual(refusedBefore)
    toA.ws.close()
    toB.ws.close()
  } finally {
    for (const d of [...replicas, ...fresh]) closeDevice(d)
  }
}

describe('an equivocation through two nodes of one deployment (Redis and PostgreSQL)', () => {
  let nodes: NodePair
  beforeAll(async () => {
    nodes = await startNodePair()
  }, 60_000)
  afterAll(() => nodes?.stop())

  it('with one Yjs item id for the two: every replica on either node freezes the stream and reports both', async () => {
    await equivocateAcross(nodes.paused(), true)
  }, 90_000)

  it('with two Yjs item ids: every replica on either node freezes the stream and reports both', async () => {
    await equivocateAcross(nodes.paused(), false)
  }, 90_000)

  it('with one Yjs item id, while one node is cut from Redis (each reads the other\'s from storage): every replica freezes the stream and reports both', async () => {
    await equivocateAcross(nodes.cut(), true)
  }, 90_000)
})

describe('an equivocation through two federated relays', () => {
  let pair: FederatedPair
  beforeAll(async () => {
    pair = await startFederatedPair()
  }, 60_000)
  afterAll(() => pair?.stop())

  it('with one Yjs item id for the two: every replica on either relay freezes the stream and reports both', async () => {
    await equivocateAcross(pair.relays(), true)
  }, 90_000)

  it('with two Yjs item ids: every replica on either relay freezes the stream and reports both', async () => {
    await equivocateAcross(pair.relays(), false)
  }, 90_000)
})
