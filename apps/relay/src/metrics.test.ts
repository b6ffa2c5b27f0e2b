import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { closeDevice, eventually, memberDevice, ownerDevice, type Device } from './testing/clients'
import { PromMetrics } from './metrics'
import { NoMetrics } from './no-metrics'

// GET /metrics of a spawned kai-relay, on prom-client: the counters as
// before, latency histograms for every update a client sent (arrival to
// stored, arrival to handed to the room's other sockets), storage commit
// times, and the process's own metrics.

/** One sample's value: `name` with exactly these labels (none if omitted). */
function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `))
  return line === undefined ? Number.NaN : Number(line.split(' ')[1])
}

describe('a relay\'s /metrics', () => {
  let relay: RelayProcess
  let owner: Device
  const scrape = async () => {
    const response = await fetch(`${relay.httpUrl}/metrics`)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    return response.text()
  }

  beforeAll(async () => {
    // Compacts after a few records, so replace commits are timed too.
    relay = await spawnRelay(['--compact-stored-after', '4'])
    owner = await ownerDevice(relay.url)
    await owner.relay.whenAcknowledged()
  }, 60_000)
  afterAll(async () => {
    closeDevice(owner)
    await relay.stop()
    relay.cleanup()
  })

  it('times every stored update from its arrival, and its commit, but counts none as relayed while no one else is in the room', async () => {
    for (let i = 0; i < 5; i++) {
      owner.engine.session.appendMessage({ id: `alone-${i}`, role: 'user', content: `alone ${i}` })
      await owner.engine.flush()
      await owner.relay.whenAcknowledged()
    }
    const text = await scrape()
    const stored = sample(text, 'kai_relay_updates_stored_total')
    expect(stored).toBeGreaterThanOrEqual(5)
    expect(sample(text, 'kai_relay_update_stored_seconds_count')).toBe(stored)
    expect(sample(text, 'kai_relay_update_stored_seconds_bucket', '{le="+Inf"}')).toBe(stored)
    expect(sample(text, 'kai_relay_update_stored_seconds_sum')).toBeGreaterThan(0)
    expect(sample(text, 'kai_relay_storage_commit_seconds_count', '{op="append"}')).toBe(stored)
    expect(sample(text, 'kai_relay_storage_commit_seconds_count', '{op="replace"}')).toBeGreaterThanOrEqual(1)
    expect(sample(text, 'kai_relay_update_relayed_seconds_count')).toBe(0)
  })

  it('times updates handed to the room\'s other sockets', async () => {
    const member = await memberDevice(relay.url, owner)
    try {
      const before = sample(await scrape(), 'kai_relay_update_relayed_seconds_count')
      for (let i = 0; i < 3; i++) {
        owner.engine.session.appendMessage({ id: `shared-${i}`, role: 'user', content: `shared ${i}` })
        await owner.engine.flush()
        await owner.relay.whenAcknowledged()
      }
      await eventually(() => member.engine.session.message('shared-2') !== undefined, 10_000, 'the member to hear the writes')
      const text = await scrape()
      expect(sample(text, 'kai_relay_update_relayed_seconds_count')).toBeGreaterThanOrEqual(before + 3)
      expect(sample(text, 'kai_relay_update_relayed_seconds_count')).toBeLessThanOrEqual(sample(text, 'kai_relay_update_stored_seconds_count'))
    } finally {
      closeDevice(member)
    }
  })

  it('keeps the counters and gauges operators and tests read, and adds the process\'s metrics', async () => {
    const text = await scrape()
    expect(sample(text, 'kai_relay_connections_total')).toBeGreaterThanOrEqual(2)
    expect(sample(text, 'kai_relay_connections')).toBeGreaterThanOrEqual(1)
    expect(sample(text, 'kai_relay_rooms')).toBe(1)
    expect(sample(text, 'kai_relay_messages_total', '{type="sync"}')).toBeGreaterThan(0)
    expect(sample(text, 'kai_relay_updates_deferred_total')).toBe(0)
    expect(text).toMatch(/^# TYPE kai_relay_update_stored_seconds histogram$/m)
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      expect(sample(text, name), name).toBeGreaterThanOrEqual(0)
    }
  })
})

it('gives each relay in a process its own registry, and all of them the process\'s metrics', async () => {
  const a = new PromMetrics()
  const b = new PromMetrics()
  a.inc('kai_relay_rejections_total', { code: 4403 })
  a.inc('kai_relay_rejections_total', { code: 4403 })
  a.stored(performance.now() - 5)
  expect(await a.get('kai_relay_rejections_total', { code: 4403 })).toBe(2)
  expect(await b.get('kai_relay_rejections_total', { code: 4403 })).toBe(0)
  const [ta, tb] = [await a.render(), await b.render()]
  expect(sample(ta, 'kai_relay_rejections_total', '{code="4403"}')).toBe(2)
  expect(sample(tb, 'kai_relay_rejections_total', '{code="4403"}')).toBeNaN()
  expect(sample(ta, 'kai_relay_update_stored_seconds_count')).toBe(1)
  expect(sample(tb, 'kai_relay_update_stored_seconds_count')).toBe(0)
  for (const t of [ta, tb]) expect(t).toMatch(/^process_cpu_user_seconds_total /m)
})

describe('a relay started with --metrics off', () => {
  let relay: RelayProcess
  let owner: Device

  beforeAll(async () => {
    relay = await spawnRelay(['--metrics', 'off'])
    owner = await ownerDevice(relay.url)
    await owner.relay.whenAcknowledged()
  }, 60_000)
  afterAll(async () => {
    closeDevice(owner)
    await relay.stop()
    relay.cleanup()
  })

  it('still stores and acknowledges what clients write, says so in its log, and answers GET /metrics with 404 metrics_off', async () => {
    owner.engine.session.appendMessage({ id: 'unmetered', role: 'user', content: 'no one counts this' })
    await owner.engine.flush()
    await owner.relay.whenAcknowledged()
    expect(relay.logs.some((l) => l.includes('"listening"') && l.includes('"metrics":"off"'))).toBe(true)
    const response = await fetch(`${relay.httpUrl}/metrics`)
    expect(response.status).toBe(404)
    expect(await response.json()).toMatchObject({ code: 'metrics_off' })
    expect((await fetch(`${relay.httpUrl}/healthz`)).status).toBe(200)
  })
})

it('NoMetrics records nothing: every counter reads 0, nothing is timed, and it renders nothing', async () => {
  const off = new NoMetrics()
  off.inc('kai_relay_rejections_total', { code: 4403 })
  off.inc('kai_relay_updates_stored_total')
  expect(await off.get('kai_relay_rejections_total', { code: 4403 })).toBe(0)
  expect(await off.get('kai_relay_updates_stored_total')).toBe(0)
  expect(off.clock()).toBeUndefined()
  expect(await off.timed('append', () => Promise.resolve('key'))).toBe('key')
  expect(await off.render()).toBe('')
  expect([off.enabled, new PromMetrics().enabled]).toEqual([false, true])
})

it('counts messages by type and bytes by amount, reads the same on every scrape, and refuses a label the counter does not have', async () => {
  const m = new PromMetrics()
  for (const type of ['sync', 'sync', 'awareness', 'sync']) m.inc('kai_relay_messages_total', { type })
  m.inc('kai_relay_bytes_sent_total', undefined, 800)
  m.inc('kai_relay_bytes_sent_total', undefined, 24)
  m.inc('kai_relay_rejections_total', { code: 4403 })
  m.inc('kai_relay_rejections_total', { code: '4403' })
  for (let scrape = 0; scrape < 2; scrape++) {
    const text = await m.render()
    expect(sample(text, 'kai_relay_messages_total', '{type="sync"}')).toBe(3)
    expect(sample(text, 'kai_relay_messages_total', '{type="awareness"}')).toBe(1)
    expect(sample(text, 'kai_relay_messages_total', '{type="auth"}')).toBeNaN()
    expect(sample(text, 'kai_relay_bytes_sent_total')).toBe(824)
    expect(sample(text, 'kai_relay_bytes_received_total')).toBe(0)
    expect(sample(text, 'kai_relay_rejections_total', '{code="4403"}')).toBe(2)
    expect(text).toMatch(/^# TYPE kai_relay_messages_total counter$/m)
  }
  expect(await m.get('kai_relay_messages_total', { type: 'sync' })).toBe(3)
  m.inc('kai_relay_messages_total', { type: 'sync' })
  expect(await m.get('kai_relay_messages_total', { type: 'sync' })).toBe(4)
  expect(() => m.inc('kai_relay_messages_total', { kind: 'sync' })).toThrow(/needs its label type/)
  expect(() => m.inc('kai_relay_messages_total', { type: 'sync', code: 1 })).toThrow(/has no label code/)
  expect(() => m.inc('kai_relay_bytes_sent_total', { type: 'sync' })).toThrow(/has no label type/)
  expect(() => m.inc('kai_relay_bytes_sent_total', undefined, -1)).toThrow(/cannot grow by -1/)
  expect(() => m.inc('kai_relay_nope_total')).toThrow(/unknown metric/)
  // A series bound once (what the relay's per-frame paths use) adds to the same totals.
  const sync = m.counter('kai_relay_messages_total', 'sync')
  sync.add()
  m.counter('kai_relay_bytes_sent_total').add(76)
  expect(await m.get('kai_relay_messages_total', { type: 'sync' })).toBe(5)
  expect(sample(await m.render(), 'kai_relay_bytes_sent_total')).toBe(900)
  expect(m.counter('kai_relay_messages_total', 'sync')).toBe(sync)
  expect(() => m.counter('kai_relay_messages_total')).toThrow(/needs its label type/)
  expect(() => m.counter('kai_relay_bytes_sent_total', 'sync')).toThrow(/has no label/)
  expect(() => m.counter('kai_relay_handoff_requests_total')).toThrow(/at most one label/)
  for (const by of [-1, NaN, Infinity]) expect(() => sync.add(by)).toThrow(/cannot grow by/)
  expect(await m.get('kai_relay_messages_total', { type: 'sync' })).toBe(5)
})
