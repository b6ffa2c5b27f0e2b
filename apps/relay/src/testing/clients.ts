import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import { SessionKeyring, WebCryptoDeviceKey, type BoxKey, type DeviceKey } from '@kai-sync/crypto'
import { CAPABILITY_PARAM, capabilityToParam, signCapability } from '@kai-sync/crypto/capability'
import { SyncEngine, WireDoc, createSession } from '@kai-sync/engine'
import { connectRelay, type RelayConnection } from '@kai-sync/providers'

export async function capability(device: DeviceKey, room: string, options: { ttlMs?: number; now?: number } = {}): Promise<string> {
  return capabilityToParam(await signCapability({ room, ...options }, device))
}

/** A device with an engine on its own wire doc, connected to the relay through @kai-sync/providers. */
export interface Device {
  key: WebCryptoDeviceKey
  engine: SyncEngine
  wire: WireDoc
  relay: RelayConnection
  /** Its X25519 key, when it has one: new epochs' keys are granted to it. */
  box?: BoxKey
}

export async function ownerDevice(url: string, options: { box?: BoxKey } = {}): Promise<Device> {
  const key = await WebCryptoDeviceKey.generate()
  const wire = new WireDoc()
  const box = options.box
  const engine = await createSession({ device: key, mode: 'desktop', agentId: 'agent', userId: 'user', wire, batchWindowMs: 5, compactAfter: null, ...(box ? { box } : {}) })
  const relay = await connectRelay(wire, url, () => capability(key, engine.sessionId), engine)
  return { key, engine, wire, relay, ...(box ? { box } : {}) }
}

/** A second device, enrolled by the owner as `role` before it connects. */
export async function memberDevice(url: string, owner: Device, role: 'writer' | 'reader' = 'writer', options: { box?: BoxKey } = {}): Promise<Device> {
  const key = await WebCryptoDeviceKey.generate()
  const box = options.box
  await owner.engine.setRole(key.publicKey, role, { label: role, ...(box ? { box: box.publicKey } : {}) })
  await owner.relay.whenAcknowledged()
  const wire = new WireDoc()
  const keys = new SessionKeyring([owner.engine.keys.current])
  const engine = await SyncEngine.open({ sessionId: owner.engine.sessionId, wire, device: key, keys, mode: 'tab', batchWindowMs: 5, compactAfter: null, ...(box ? { box } : {}) })
  const relay = await connectRelay(wire, url, () => capability(key, owner.engine.sessionId), engine)
  const closes: string[] = []
  relay.provider.on('connection-close', (e) => closes.push(`${e?.code} ${e?.reason}`))
  await eventually(() => engine.role === role, 8000, `the ${role} role to arrive (closes: ${closes.join('; ') || 'none'})`)
  await relay.whenSynced()
  return { key, engine, wire, relay, ...(box ? { box } : {}) }
}

export function closeDevice(d: Device): void {
  d.relay.destroy()
  d.engine.destroy()
}

/** The stock y-websocket v3 provider, with nothing of ours but the capability param. */
export function stockProvider(url: string, room: string, doc: Y.Doc, cap: string): WebsocketProvider {
  return new WebsocketProvider(url, room, doc, { params: { [CAPABILITY_PARAM]: cap }, WebSocketPolyfill: WebSocket as never, disableBc: true })
}

/** A raw WebSocket for sending crafted frames; resolves once open or closed. */
export interface RawClient {
  ws: WebSocket
  received: Uint8Array[]
  closed: Promise<{ code: number; reason: string }>
  send(bytes: Uint8Array): void
}

export function rawClient(url: string, room: string, cap: string | null, extra = ''): Promise<RawClient> {
  const query = cap === null ? '' : `?${CAPABILITY_PARAM}=${cap}${extra}`
  const ws = new WebSocket(`${url}/${room}${query}`)
  const received: Uint8Array[] = []
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  ws.on('message', (data: Buffer) => received.push(new Uint8Array(data)))
  ws.on('error', () => {})
  return new Promise((resolve) => {
    const client: RawClient = { ws, received, closed, send: (b) => ws.readyState === WebSocket.OPEN && ws.send(b) }
    ws.once('open', () => resolve(client))
    void closed.then(() => resolve(client))
  })
}

/** A y-websocket update message carrying a raw Yjs update. */
export function updateFrame(update: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 0)
  syncProtocol.writeUpdate(e, update)
  return encoding.toUint8Array(e)
}

export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** The room's whole wire doc as the relay serves it to a fresh connection of `device` (sync step 1 with an empty state vector). */
export async function wireOnRelay(url: string, room: string, device: DeviceKey): Promise<WireDoc> {
  const viewer = await rawClient(url, room, await capability(device, room))
  try {
    await eventually(() => viewer.received.length > 0, 5000, 'the relay\'s sync step 1')
    viewer.send(new Uint8Array([0, 0, 1, 0]))
    await eventually(() => viewer.received.some((m) => m[0] === 0 && m[1] === 1), 5000, 'sync step 2')
    const d = decoding.createDecoder(viewer.received.find((m) => m[0] === 0 && m[1] === 1)!)
    d.pos = 2
    const doc = new Y.Doc()
    Y.applyUpdate(doc, decoding.readVarUint8Array(d))
    return new WireDoc(doc)
  } finally {
    viewer.ws.close()
  }
}
