import { describe, expect, it } from 'vitest'
import { parseConfig, usage } from './config'

describe('kai-relay configuration', () => {
  it('defaults to loopback, port 1234 and an embedded store', () => {
    const c = parseConfig([], {})
    expect(c).toMatchObject({ host: '127.0.0.1', port: 1234, dataDir: './.data/relay', peers: [] })
  })

  it('reads every flag from its environment variable, and a flag wins over it', () => {
    const env = { KAI_RELAY_PORT: '4000', KAI_RELAY_HOST: '0.0.0.0', KAI_RELAY_PEERS: 'ws://a:1, ws://b:2', KAI_RELAY_MAX_MESSAGE_BYTES: '2048', KAI_RELAY_HANDOFF_PER_MINUTE: '7' }
    const c = parseConfig(['--port', '5000'], env)
    expect(c).toMatchObject({ host: '0.0.0.0', port: 5000, peers: ['ws://a:1', 'ws://b:2'] })
    if (c !== 'help') expect(c.limits).toMatchObject({ maxMessageBytes: 2048, handoffPerMinute: 7 })
    const p = parseConfig(['--peer', 'ws://x:1', '--peer', 'ws://y:2'], env)
    expect(p !== 'help' && p.peers).toEqual(['ws://x:1', 'ws://y:2'])
  })

  it('says what is wrong with a bad value, naming the flag and its variable', () => {
    expect(() => parseConfig(['--port', 'abc'], {})).toThrow(/invalid_input: --port \(KAI_RELAY_PORT\) must be a whole number/)
    expect(() => parseConfig(['--peer', 'http://x'], {})).toThrow(/--peer must be a ws:\/\/ or wss:\/\/ URL/)
    expect(() => parseConfig(['--redis-url', 'redis://x'], {})).toThrow(/--redis-url needs --postgres-url/)
    expect(() => parseConfig(['--nope'], {})).toThrow()
  })

  it('--help lists every flag with its environment variable', () => {
    expect(parseConfig(['--help'], {})).toBe('help')
    for (const flag of ['--host', '--port', '--data-dir', '--redis-url', '--postgres-url', '--peer']) expect(usage()).toContain(flag)
    expect(usage()).toContain('KAI_RELAY_POSTGRES_URL')
    for (const flag of ['--max-bytes-per-second', '--byte-burst', 'KAI_RELAY_MAX_BYTES_PER_SECOND']) expect(usage()).toContain(flag)
  })

  it('records metrics unless --metrics off (or KAI_RELAY_METRICS=off) says not to, and names the flag for any other value', () => {
    expect(parseConfig([], {})).toMatchObject({ metrics: true })
    expect(parseConfig(['--metrics', 'off'], {})).toMatchObject({ metrics: false })
    expect(parseConfig(['--metrics=off'], {})).toMatchObject({ metrics: false })
    expect(parseConfig([], { KAI_RELAY_METRICS: 'off' })).toMatchObject({ metrics: false })
    expect(parseConfig(['--metrics', 'on'], { KAI_RELAY_METRICS: 'off' })).toMatchObject({ metrics: true })
    expect(() => parseConfig(['--metrics', 'no'], {})).toThrow(/invalid_input: --metrics \(KAI_RELAY_METRICS\) must be on or off, not "no"/)
    expect(usage()).toContain('--metrics')
  })

  it('limits bytes per connection as well as messages, by default and by flag', () => {
    const d = parseConfig([], {})
    if (d !== 'help') expect(d.limits.byteBurst).toBeGreaterThanOrEqual(d.limits.maxMessageBytes)
    const c = parseConfig(['--max-bytes-per-second', '5000', '--byte-burst', '9000'], {})
    if (c !== 'help') expect(c.limits).toMatchObject({ bytesPerSecond: 5000, byteBurst: 9000 })
  })
})
