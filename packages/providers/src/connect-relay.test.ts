import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterEach, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { WebCryptoDeviceKey, createGenesis } from '@kai-sync/crypto'
import { capabilityToParam, decodeCapability, signCapability } from '@kai-sync/crypto/capability'
import * as Y from 'yjs'
import { WireDoc, createSession } from '@kai-sync/engine'
import { SimNetwork, addReplica, createSimSession, seededRandom, settle } from '@kai-sync/engine/testing'
import { connectRelay } from './connect-relay'
import { ackMessage } from '@kai-sync/engine'

const ack = (pairs: [number, number][]) => ackMessage(new Map(pairs))

// A real WebSocket server standing in for the network side: it records the
// URLs clients open, can drop a connection, and can send an ack frame.
const servers: WebSocketServer[] = []
afterEach(() => {
  for (const s of servers.splice(0)) s.close()
})

function server(): Promise<{ wss: WebSocketServer; url: string; urls: string[] }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  servers.push(wss)
  const urls: string[] = []
  wss.on('connection', (_ws, req) => urls.push(req.url ?? ''))
  return new Promise((resolve) => wss.on('listening', () => resolve({ wss, url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`, urls })))
}

it('opens the room the capability names, asks for acks, and signs a fresh capability for every reconnect', async () => {
  const { wss, url, urls } = await server()
  const device = await WebCryptoDeviceKey.generate()
  const room = (await createGenesis(device, 'x')).sessionId
  const issued: string[] = []
  const connection = await connectRelay(new WireDoc(), url, async () => {
    const cap = capabilityToParam(await signCapability({ room }, device))
    issued.push(cap)
    return cap
  })
  const params = () => urls.map((u) => new URL(u, 'http://x'))
  await waitFor(() => urls.length === 1)
  expect(params()[0]!.pathname).toBe(`/${room}`)
  expect(params()[0]!.searchParams.get('ack')).toBe('1')
  for (const ws of wss.clients) ws.terminate()
  await waitFor(() => urls.length === 2)
  const caps = params().map((p) => p.searchParams.get('cap')!)
  expect(caps[0]).not.toBe(caps[1])
  expect(decodeCapability(caps[1]!).room).toBe(room)
  expect(issued).toContain(caps[1])
  connection.destroy()
})

it('reports the relay\'s acks: per client, the highest clock stored', async () => {
  const { wss, url } = await server()
  const device = await WebCryptoDeviceKey.generate()
  const room = (await createGenesis(device, 'x')).sessionId
  const connection = await connectRelay(new WireDoc(), url, capabilityToParam(await signCapability({ room }, device)))
  const acks: Map<number, number>[] = []
  connection.on('ack', (s) => acks.push(s))
  await waitFor(() => wss.clients.size === 1)
  for (const ws of wss.clients) {
    ws.send(ack([[7, 10], [8, 3]]))
    ws.send(ack([[7, 4]]))
  }
  await waitFor(() => acks.length === 2)
  expect(connection.acknowledged.get(7)).toBe(10)
  expect(connection.acknowledged.get(8)).toBe(3)
  connection.destroy()
})

it('after a 44xx refusal it reports "refused"; with retryRefused it comes back later with a fresh capability', async () => {
  const { wss, url, urls } = await server()
  let refuse = true
  wss.on('connection', (ws) => {
    if (refuse) ws.close(4403, 'not in the roster')
    refuse = false
  })
  const device = await WebCryptoDeviceKey.generate()
  const room = (await createGenesis(device, 'x')).sessionId
  const sign = async () => capabilityToParam(await signCapability({ room }, device))
  const connection = await connectRelay(new WireDoc(), url, sign, undefined, { retryRefused: { firstMs: 300, maxMs: 1000 } })
  const states: string[] = []
  const closes: number[] = []
  connection.on('state', (s) => states.push(s))
  connection.on('closed', ({ code }) => closes.push(code))
  await waitFor(() => connection.state === 'refused')
  expect(closes).toEqual([4403])
  expect(urls).toHaveLength(1)
  await waitFor(() => urls.length === 2 && connection.state === 'connected')
  const caps = urls.map((u) => new URL(u, 'http://x').searchParams.get('cap'))
  expect(caps[1]).not.toBe(caps[0])
  expect(states).toEqual(expect.arrayContaining(['refused', 'connecting', 'connected']))
  connection.destroy()
})

it('with retryRefused, a device its engine knows was removed does not retry: removal is final', async () => {
  const net = new SimNetwork(seededRandom(1).gen, { reorder: 0, drop: 0, duplicate: 0 })
  const session = await createSimSession(net)
  const removed = await addReplica(net, session)
  await settle(net, session.replicas)
  await session.owner.engine.removeDevice(removed.device.publicKey)
  await settle(net, session.replicas)
  expect(removed.engine.role).toBe('removed')
  const { wss, url, urls } = await server()
  wss.on('connection', (ws) => ws.close(4403, 'this device was removed from the session'))
  const sign = async () => capabilityToParam(await signCapability({ room: session.sessionId }, removed.device))
  const connection = await connectRelay(removed.engine.wire, url, sign, removed.engine, { retryRefused: { firstMs: 100, maxMs: 200 } })
  await waitFor(() => connection.state === 'refused')
  await new Promise((r) => setTimeout(r, 600))
  expect(urls).toHaveLength(1)
  connection.destroy()
  for (const r of session.replicas) r.engine.destroy()
})

it('without retryRefused a refusal is final, as with the stock provider', async () => {
  const { wss, url, urls } = await server()
  wss.on('connection', (ws) => ws.close(4401, 'no capability'))
  const device = await WebCryptoDeviceKey.generate()
  const room = (await createGenesis(device, 'x')).sessionId
  const connection = await connectRelay(new WireDoc(), url, async () => capabilityToParam(await signCapability({ room }, device)))
  await waitFor(() => connection.state === 'refused')
  await new Promise((r) => setTimeout(r, 800))
  expect(urls).toHaveLength(1)
  connection.destroy()
})

it('reconnects with a capability signed after the close when the one signed ahead is near its expiry', async () => {
  const { wss, url, urls } = await server()
  const device = await WebCryptoDeviceKey.generate()
  const room = (await createGenesis(device, 'x')).sessionId
  // Ten seconds of life: too little to be trusted for a later reconnect.
  const sign = async () => capabilityToParam(await signCapability({ room, ttlMs: 10_000 }, device))
  const connection = await connectRelay(new WireDoc(), url, sign)
  await waitFor(() => urls.length === 1)
  await new Promise((r) => setTimeout(r, 50)) // the capability signed ahead is ready
  const closedAt = Date.now()
  for (const ws of wss.clients) ws.terminate()
  await waitFor(() => urls.length === 2)
  const cap = new URL(urls[1]!, 'http://x').searchParams.get('cap')!
  expect(decodeCapability(cap).issuedAt).toBeGreaterThanOrEqual(closedAt)
  connection.destroy()
})

it('whenSynced(timeoutMs) rejects with "unavailable" when the relay never syncs', async () => {
  const { url } = await server()
  const device = await WebCryptoDeviceKey.generate()
  const room = (await createGenesis(device, 'x')).sessionId
  const connection = await connectRelay(new WireDoc(), url, capabilityToParam(await signCapability({ room }, device)))
  await expect(connection.whenSynced(300)).rejects.toMatchObject({ code: 'unavailable' })
  connection.destroy()
})

it('refuses an address that is not ws:// or wss://', async () => {
  const device = await WebCryptoDeviceKey.generate()
  const room = (await createGenesis(device, 'x')).sessionId
  await expect(connectRelay(new WireDoc(), 'http://127.0.0.1:1', capabilityToParam(await signCapability({ room }, device)))).rejects.toMatchObject({ code: 'invalid_input' })
})

it('turns the engine "synced" only once the relay holds everything the wire doc holds, writes of an earlier run included', async () => {
  const { wss, url } = await server()
  const device = await WebCryptoDeviceKey.generate()
  const wire = new WireDoc()
  // What an earlier run of this device left in the store: items of another Yjs client.
  const earlier = new Y.Doc()
  earlier.getArray('log').push([new Uint8Array([1, 2, 3])])
  Y.applyUpdate(wire.doc, Y.encodeStateAsUpdate(earlier))
  const engine = await createSession({ device, mode: 'headless', agentId: 'a', userId: 'u', wire })
  await engine.flush()
  const connection = await connectRelay(wire, url, capabilityToParam(await signCapability({ room: engine.sessionId }, device)), engine)
  await waitFor(() => wss.clients.size === 1)
  const own = Y.getState(wire.doc.store, wire.doc.clientID)
  for (const ws of wss.clients) ws.send(ack([[wire.doc.clientID, own]]))
  await waitFor(() => connection.acknowledged.get(wire.doc.clientID) === own)
  expect(engine.status.state).toBe('saved')
  for (const ws of wss.clients) ws.send(ack([[earlier.clientID, Y.getState(earlier.store, earlier.clientID)]]))
  await waitFor(() => engine.status.state === 'synced')
  connection.destroy()
  engine.destroy()
})

it('a program that closes its connection exits: nothing the link started keeps the process alive', async () => {
  const { url } = await server()
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
  const child = spawn(process.execPath, ['--import', tsx, fileURLToPath(new URL('./fixtures/connect-and-close.ts', import.meta.url)), url], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  // The awareness a provider makes checks presence every 3 s until destroyed.
  const timeout = new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 8000))
  const outcome = await Promise.race([exited, timeout])
  child.kill('SIGKILL')
  expect(out).toContain('closed')
  expect(outcome).toBe(0)
}, 20_000)

async function waitFor(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 10))
  }
}
