import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { Redis } from 'ioredis'
import { startPostgres, type PostgresServer } from '@kai-sync/storage/testing'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { startRedis, type RedisServer } from './testing/redis-server'
import { capability, closeDevice, eventually, memberDevice, ownerDevice, rawClient } from './testing/clients'
import { messagesOnRelay } from './testing/session-view'
import { CloseCode } from './close-codes'
import { BoxKey, randomBytes, toBase64Url } from '@kai-sync/crypto'
import { signHandoffClaim, signHandoffToken } from '@kai-sync/crypto/handoff-token'
import { NobleDeviceKey } from '@kai-sync/crypto/noble'
import { httpHandoffRelay, initiateHandoff, parseResumeLink } from '@kai-sync/handoff'
import { acceptThroughRelay } from './testing/handoff'

const MARKER = 'PLAINTEXT-MARKER-5ca1e0u7'

let postgres: PostgresServer
let redis: RedisServer
let relays: RelayProcess[] = []
const redisTraffic: Buffer[] = []
let monitor: Redis

beforeAll(async () => {
  ;[postgres, redis] = await Promise.all([startPostgres(), startRedis()])
  // Everything published between the relays, to look for plaintext.
  monitor = new Redis(redis.url)
  await monitor.psubscribe('*')
  monitor.on('pmessageBuffer', (_pattern: Buffer, _channel: Buffer, message: Buffer) => redisTraffic.push(message))
  const args = ['--redis-url', redis.url, '--postgres-url', postgres.url]
  // As users run them (bin/kai-relay.mjs, which loads ioredis and pg only
  // when asked for), two started at once, each bundling into the same dist/.
  relays = await Promise.all([spawnRelay(args, { shipped: true }), spawnRelay(args, { shipped: true })])
})
afterAll(async () => {
  monitor.disconnect()
  await Promise.all(relays.map((r) => r.stop()))
  for (const r of relays) r.cleanup()
  await Promise.all([postgres.stop(), redis.stop()])
})

describe('two relays sharing Redis and PostgreSQL', () => {
  it('a device on relay 1 and a device on relay 2 converge live', async () => {
    const [r1, r2] = relays as [RelayProcess, RelayProcess]
    const owner = await ownerDevice(r1.url)
    await owner.relay.whenAcknowledged()
    const writer = await memberDevice(r2.url, owner) // enrolled through r1, connects to r2
    for (let i = 0; i < 10; i++) {
      owner.engine.session.appendMessage({ id: `a${i}`, role: 'user', content: `from relay 1: ${MARKER}` })
      writer.engine.session.appendMessage({ id: `b${i}`, role: 'assistant', content: `from relay 2: ${MARKER}` })
      await new Promise((r) => setTimeout(r, 10))
    }
    await eventually(() => owner.engine.session.messageIds().length === 20 && writer.engine.session.messageIds().length === 20, 15_000, 'live convergence across relays')
    await owner.engine.whenIdle()
    await owner.relay.whenAcknowledged()
    await writer.relay.whenAcknowledged()

    // Durable state is in PostgreSQL: a relay that never saw the room serves it all.
    const r3 = await spawnRelay(['--redis-url', redis.url, '--postgres-url', postgres.url])
    relays.push(r3)
    const ids = await messagesOnRelay(r3.url, owner.engine.sessionId, owner.key, owner.engine.keys.current, 20)
    expect(ids.length).toBe(20)

    // Capabilities are single-use across the whole deployment.
    const cap = await capability(owner.key, owner.engine.sessionId)
    const first = await rawClient(r1.url, owner.engine.sessionId, cap)
    expect((await (await rawClient(r2.url, owner.engine.sessionId, cap)).closed).code).toBe(CloseCode.Unauthenticated)
    first.ws.close()
    closeDevice(owner)
    closeDevice(writer)
  })

  it('PostgreSQL rows and Redis traffic never contain the plaintext', async () => {
    const client = new pg.Client({ connectionString: postgres.url })
    await client.connect()
    const rows = await client.query<{ update: Buffer }>('SELECT update FROM kai_updates')
    await client.end()
    expect(rows.rows.length).toBeGreaterThan(0)
    for (const row of rows.rows) expect(row.update.includes(Buffer.from(MARKER))).toBe(false)
    expect(redisTraffic.length).toBeGreaterThan(0)
    for (const m of redisTraffic) expect(m.includes(Buffer.from(MARKER))).toBe(false)
  })

  it('a handoff registered through relay 1 is burned once across the deployment, and its target enrolls through relay 2', async () => {
    const [r1, r2] = relays as [RelayProcess, RelayProcess]
    const owner = await ownerDevice(r1.url, { box: await BoxKey.generate() })
    await owner.relay.whenSynced()
    const sid = owner.engine.sessionId

    // Two targets racing with one token through two relays: one wins.
    const invite = await NobleDeviceKey.generate()
    const token = await signHandoffToken({ sessionId: sid, sourceMode: 'desktop', targetMode: 'mobile', transfer: 'mirror', invite: invite.publicKey }, owner.key)
    await httpHandoffRelay(r1.url).register(sid, { token: toBase64Url(token.bytes) })
    /** A resume body for a fresh device, its claim signed with the invite secret. */
    const claimed = async (key: NobleDeviceKey, t: typeof token) => {
      const device = randomBytes(32)
      const box = randomBytes(32)
      const claim = await signHandoffClaim(t, key, device, box)
      return { token: toBase64Url(t.bytes), device: toBase64Url(device), box: toBase64Url(box), claim: toBase64Url(claim) }
    }
    const resumeAt = async (url: string) =>
      fetch(`${url.replace('ws:', 'http:')}/session/${sid}/resume`, {
        method: 'POST',
        body: JSON.stringify(await claimed(invite, token)),
      }).then((r) => r.status)
    expect((await Promise.all([resumeAt(r1.url), resumeAt(r2.url)])).sort()).toEqual([200, 409])
    expect(await resumeAt(r1.url)).toBe(409)

    // The whole handoff: registered through relay 1, resumed and synced through relay 2.
    const response = await initiateHandoff(
      owner.engine,
      { session_id: sid, source_mode: 'desktop', target_mode: 'mobile', transfer_type: 'mirror' },
      { appUrl: 'https://kai.example/resume', relayUrl: r2.url, relay: httpHandoffRelay(r1.url) },
    )
    await owner.engine.flush()
    await owner.relay.whenAcknowledged()
    const target = await acceptThroughRelay(response.resume_url)
    try {
      expect(target.engine.role).toBe('writer')
      target.engine.session.appendMessage({ id: 'via-r2', role: 'user', content: 'written through relay 2' })
      await eventually(() => owner.engine.session.message('via-r2') !== undefined, 15_000, 'the target\'s message at the owner on relay 1')
      const link = parseResumeLink(response.resume_url)
      const replay = await claimed(await NobleDeviceKey.fromSecret(link.inviteSecret), link.token)
      await expect(httpHandoffRelay(r1.url).resume(sid, replay)).rejects.toMatchObject({ code: 'already_used' })
    } finally {
      target.close()
      closeDevice(owner)
    }
  })
})
