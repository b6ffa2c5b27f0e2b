import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawnRelay, type RelayProcess } from './testing/relay-process'

// A connection that never completes its WebSocket upgrade holds a socket
// and parser state for nothing: it is closed at --pre-auth-timeout-ms,
// whether it sends nothing, stops halfway through its headers, or trickles
// them a line at a time.

const TIMEOUT_MS = 500

let relay: RelayProcess
beforeAll(async () => {
  relay = await spawnRelay(['--pre-auth-timeout-ms', String(TIMEOUT_MS)])
})
afterAll(async () => {
  await relay.stop()
  relay.cleanup()
})

/** Opens a raw TCP connection, lets `talk` write to it, and resolves with how long the relay kept it open. */
function heldOpenFor(talk: (socket: Socket) => void, giveUpMs = 8000): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(relay.port, '127.0.0.1')
    let opened = 0
    const giveUp = setTimeout(() => {
      socket.destroy()
      reject(new Error(`the relay kept the connection open for over ${giveUpMs} ms`))
    }, giveUpMs)
    socket.on('connect', () => {
      opened = Date.now()
      talk(socket)
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(giveUp)
      resolve(Date.now() - opened)
    })
  })
}

describe('the pre-auth timeout', () => {
  it('closes a socket that sends nothing, half an upgrade request, or a header line every 100 ms, at --pre-auth-timeout-ms', async () => {
    const room = 'A'.repeat(43)
    const silent = heldOpenFor(() => {})
    const partial = heldOpenFor((s) => s.write(`GET /${room} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n`))
    const trickle = heldOpenFor((s) => {
      s.write(`GET /${room} HTTP/1.1\r\n`)
      let n = 0
      const timer = setInterval(() => (s.writable ? s.write(`X-Slow-${n++}: ${'x'.repeat(10)}\r\n`) : clearInterval(timer)), 100)
      s.on('close', () => clearInterval(timer))
    })
    const [s, p, t] = await Promise.all([silent, partial, trickle])
    const held = { silent: s, partial: p, trickle: t }
    console.log(`pre-auth timeout ${TIMEOUT_MS} ms: connections held open for ${JSON.stringify(held)} ms`)
    for (const ms of Object.values(held)) {
      expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50)
      expect(ms).toBeLessThan(TIMEOUT_MS + 1500)
    }
  })
})
