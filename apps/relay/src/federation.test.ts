import { afterAll, beforeAll, expect, it } from 'vitest'
import { freePort } from '@kai-sync/process-harness'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { closeDevice, eventually, memberDevice, ownerDevice } from './testing/clients'
import { messagesOnRelay } from './testing/session-view'

let a: RelayProcess
let b: RelayProcess
beforeAll(async () => {
  // Each names the other, so each must know the other's port before starting.
  const [pa, pb] = await Promise.all([freePort(), freePort()])
  ;[a, b] = await Promise.all([
    spawnRelay(['--peer', `ws://127.0.0.1:${pb}`], { port: pa }),
    spawnRelay(['--peer', `ws://127.0.0.1:${pa}`], { port: pb }),
  ])
})
afterAll(async () => {
  if (process.env.KAI_DUMP_LOGS) console.log('A:\n' + a.logs.join('\n') + '\nB:\n' + b.logs.join('\n'))
  await Promise.all([a.stop(), b.stop()])
  a.cleanup()
  b.cleanup()
})

it('two federated relays serve one session: devices on each converge live, and each relay stores it all', async () => {
  const owner = await ownerDevice(a.url)
  await owner.relay.whenAcknowledged()
  // The writer is enrolled on relay A and connects only to relay B.
  const writer = await memberDevice(b.url, owner)
  for (let i = 0; i < 10; i++) {
    owner.engine.session.appendMessage({ id: `a${i}`, role: 'user', content: `via A ${i}` })
    writer.engine.session.appendMessage({ id: `b${i}`, role: 'assistant', content: `via B ${i}` })
    await new Promise((r) => setTimeout(r, 10))
  }
  await eventually(() => owner.engine.session.messageIds().length === 20 && writer.engine.session.messageIds().length === 20, 15_000, 'live convergence across federated relays')
  await owner.engine.whenIdle()
  await writer.engine.whenIdle()
  await owner.relay.whenAcknowledged()
  await writer.relay.whenAcknowledged()
  // Each relay holds the whole session on its own.
  await eventually(async () => (await messagesOnRelay(b.url, owner.engine.sessionId, owner.key, owner.engine.keys.current)).length === 20, 10_000, 'B to hold everything')
  await eventually(async () => (await messagesOnRelay(a.url, owner.engine.sessionId, owner.key, owner.engine.keys.current)).length === 20, 10_000, 'A to hold everything')
  // Peer links were checked like clients: nothing refused between honest relays.
  for (const r of [a, b]) expect(await (await fetch(`${r.httpUrl}/metrics`)).text()).not.toMatch(/kai_relay_rejections_total\{code="44\d\d"\} [1-9]/)
  closeDevice(owner)
  closeDevice(writer)
})
