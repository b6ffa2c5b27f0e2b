import { afterAll, describe, expect, it } from 'vitest'
import { eventually, kai, spawnDaemon, spawnStockRelay, type DaemonProcess, type StockRelay } from './testing'

// The wire doc is an ordinary Yjs document, so any y-websocket relay can
// carry it: the stock @y/websocket-server, which checks nothing, stores in
// memory and sends no acks. Two daemons still converge through it, but
// their sessions never claim "synced": only a relay's ack earns that.

const cleanups: Array<() => void> = []
afterAll(() => {
  for (const c of cleanups.reverse()) c()
})

describe('through the stock y-websocket server', () => {
  let relay: StockRelay
  let a: DaemonProcess
  let b: DaemonProcess

  it('two daemons converge, and their sessions stay "saved", never "synced"', async () => {
    relay = await spawnStockRelay()
    cleanups.push(() => relay.cleanup())
    ;[a, b] = await Promise.all([spawnDaemon({ relayUrl: relay.url, label: 'daemon A' }), spawnDaemon({ relayUrl: relay.url, label: 'daemon B' })])
    cleanups.push(() => a.cleanup(), () => b.cleanup())
    const sessionId = (await kai(a, 'create')).trim()
    await kai(a, 'append', sessionId, 'through a stock relay')
    const identity = JSON.parse(await kai(b, '--json', 'device')) as { device: string; box: string }
    await kai(a, 'device', 'add', sessionId, identity.device, identity.box, '--label', 'daemon B')
    const joined = JSON.parse(await kai(b, '--json', 'join', sessionId)) as { messages: Array<{ content: string }> }
    expect(joined.messages.map((m) => m.content)).toEqual(['through a stock relay'])
    await kai(b, 'append', sessionId, 'and back')
    await eventually(async () => (await a.api('GET', `/session/${sessionId}`)).json.messages.length, (n) => n === 2, 'A to have B\'s message')
    for (const daemon of [a, b]) {
      const [summary] = (await daemon.api('GET', '/sessions')).json.sessions
      expect(summary).toMatchObject({ relay: 'connected', sync: 'saved' })
    }
  })
})
