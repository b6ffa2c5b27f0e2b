import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BoxKey, ZERO_HASH, decodeEnvelope, decodeKeyGrant, equalBytes, newStreamId, sealEnvelope, type Envelope, type EnvelopeHeader } from '@kai-sync/crypto'
import type { WireDoc } from '@kai-sync/engine'
import { connectRelay, type RelayConnection } from '@kai-sync/providers'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { capability, closeDevice, eventually, memberDevice, ownerDevice, rawClient, updateFrame, wireOnRelay, type Device } from './testing/clients'
import { craftUpdate } from './testing/forge'

// Issue 12, item 6, at the relay: an envelope sealed under a key epoch
// after a newer epoch started (the owner's grants of it date the start) is
// dropped, by the rule the replicas apply (the engine's EpochStarts): the
// relay merges a tombstone in its place, so it neither stores nor relays
// to a removed device what it could still decrypt, and keeps the
// connection and the rest of the update, so a writer that sealed it before
// it heard of the removal is not shut out (it was, when the relay refused
// the update with 4403: its wire doc sent the envelope again on every
// connection, each closed before the new key reached it). Through a
// spawned relay.

let relay: RelayProcess
let owner: Device
let writer: Device
let removed: Device
/** A writer that goes offline before the removal and hears of it only once it comes back. */
let racer: Device
let room: string
/** When epoch 1 started: the removal's issuedAt, which the owner's grants of epoch 1 carry. */
let start: number

beforeAll(async () => {
  relay = await spawnRelay()
  owner = await ownerDevice(relay.url, { box: await BoxKey.generate() })
  room = owner.engine.sessionId
  await owner.relay.whenSynced()
  writer = await memberDevice(relay.url, owner, 'writer', { box: await BoxKey.generate() })
  removed = await memberDevice(relay.url, owner, 'writer', { box: await BoxKey.generate() })
  racer = await memberDevice(relay.url, owner, 'writer', { box: await BoxKey.generate() })
  await owner.relay.whenAcknowledged()
  racer.relay.destroy()
  await owner.engine.removeDevice(removed.key.publicKey)
  await owner.engine.flush()
  await owner.relay.whenAcknowledged()
  start = startOf(owner.wire)
  expect(Number.isFinite(start)).toBe(true)
})

afterAll(async () => {
  for (const d of [owner, writer, removed, racer]) closeDevice(d)
  await relay.stop()
  relay.cleanup()
})

/** The start of epoch 1 as the owner's grants date it (a grant's header is public; its key is wrapped). */
function startOf(wire: WireDoc): number {
  return Math.min(...wire.keyGrants().map(decodeKeyGrant).filter((g) => g.epoch === 1).map((g) => g.issuedAt))
}

async function sealedByWriter(epoch: 0 | 1, createdAt: number, header: Partial<EnvelopeHeader> = {}): Promise<Envelope> {
  const key = owner.engine.keys.get(epoch)!
  return sealEnvelope({ header: { kind: 'update', sessionId: room, stream: newStreamId(), seq: 1, prev: ZERO_HASH, createdAt, clientIds: [], covers: [], ...header }, plaintext: new Uint8Array([0, 0]), key, signer: writer.key })
}

/**
 * Sends `envs` as new log entries in one update, from a raw connection of
 * the writer, while the owner listens; resolves once the last of them is
 * on the relay (or the connection closed), with the close code (null if
 * still open a moment later) and every update message the owner heard.
 */
async function send(...envs: Envelope[]): Promise<{ code: number | null; reason: string; heard: Uint8Array[] }> {
  const listener = await rawClient(relay.url, room, await capability(owner.key, room))
  const client = await rawClient(relay.url, room, await capability(writer.key, room))
  try {
    client.send(updateFrame(craftUpdate((await wireOnRelay(relay.url, room, owner.key)).doc, (w) => w.append(envs.map((e) => e.bytes), null))))
    const closed = await Promise.race([client.closed, logged(envs.at(-1)!).then(() => null)])
    const late = closed ?? (await Promise.race([client.closed, new Promise<null>((r) => setTimeout(() => r(null), 300))]))
    return { ...(late ?? { code: null, reason: '' }), heard: listener.received }
  } finally {
    client.ws.close()
    listener.ws.close()
  }
}

const carries = (messages: Uint8Array[], env: Envelope) => messages.some((m) => Buffer.from(m).indexOf(Buffer.from(env.bytes)) >= 0)

async function logged(env: Envelope): Promise<void> {
  await eventually(async () => (await wireOnRelay(relay.url, room, owner.key)).envelopes().some((e) => equalBytes(e, env.bytes)), 8000, 'the envelope on the relay')
}

async function onRelay(env: Envelope): Promise<boolean> {
  return (await wireOnRelay(relay.url, room, owner.key)).envelopes().some((e) => equalBytes(e, env.bytes))
}

describe('the stale-epoch rule at the relay', () => {
  it('drops an envelope sealed under epoch 0 after epoch 1 started: stores and relays none of it, keeps the connection and the rest of the update, and takes one sealed before', async () => {
    const stale = await sealedByWriter(0, start + 1)
    const current = await sealedByWriter(1, start + 1)
    const sent = await send(stale, current)
    expect(sent.code).toBeNull()
    expect(await onRelay(current)).toBe(true)
    expect(await onRelay(stale)).toBe(false)
    expect(carries(sent.heard, current)).toBe(true)
    expect(carries(sent.heard, stale)).toBe(false)
    // Sealed before the removal and delivered late: not stale, on replicas or here.
    const late = await sealedByWriter(0, start)
    expect((await send(late)).code).toBeNull()
    expect(await onRelay(late)).toBe(true)
  })

  it('a stale snapshot is dropped too', async () => {
    const stale = await sealedByWriter(0, start + 5, { kind: 'snapshot', seq: 0 })
    const current = await sealedByWriter(1, start + 5)
    const sent = await send(stale, current)
    expect(sent.code).toBeNull()
    expect(await onRelay(stale)).toBe(false)
    expect(carries(sent.heard, stale)).toBe(false)
  })

  it('still dropped after a restart: the relay dates the epochs from the grants it stored', async () => {
    await relay.stop()
    relay = await relay.restart()
    const stale = await sealedByWriter(0, start + 10)
    const current = await sealedByWriter(1, start + 10)
    const sent = await send(stale, current)
    expect(sent.code).toBeNull()
    expect(await onRelay(current)).toBe(true)
    expect(await onRelay(stale)).toBe(false)
  })

  it('a writer racing the removal is never refused: the relay drops its stale envelope, it re-seals what it wrote under the new epoch and syncs it; the removed device never gets it', async () => {
    // Offline through the removal: it has epoch 0 only, and seals under it.
    const { engine, wire, key: device } = racer
    expect(engine.keys.has(1)).toBe(false)
    engine.session.appendMessage({ id: 'racing', role: 'user', content: 'written before it heard of the removal' })
    await engine.flush()
    expect(engine.wire.envelopes().map(decodeEnvelope).some((e) => e.header.epoch === 0 && e.header.createdAt > start)).toBe(true)
    const closes: string[] = []
    let link: RelayConnection | undefined
    try {
      link = await connectRelay(wire, relay.url, () => capability(device, room), engine, { retryRefused: { firstMs: 200, maxMs: 1000 } })
      link.on('closed', ({ code, reason }) => closes.push(`${code} ${reason}`))
      await eventually(() => owner.engine.session.message('racing')?.content === 'written before it heard of the removal', 20_000, `the re-sealed message at the owner (closes: ${closes.join('; ') || 'none'})`)
      // What the relay holds of it is sealed under epoch 1.
      const mine = (await wireOnRelay(relay.url, room, owner.key)).envelopes().map(decodeEnvelope).filter((e) => equalBytes(e.header.device, device.publicKey))
      expect(mine.length).toBeGreaterThan(0)
      expect(mine.filter((e) => e.header.epoch === 0 && e.header.createdAt > start)).toEqual([])
      expect(closes).toEqual([])
      expect(removed.engine.session.message('racing')).toBeUndefined()
    } finally {
      link?.destroy()
    }
  }, 40_000)
})
