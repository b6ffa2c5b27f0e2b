import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import { CAPABILITY_PARAM, SessionKeyring, WebCryptoDeviceKey, capabilityToParam, signCapability, type DeviceKey } from '@kai-sync/crypto'
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
}

export async function ownerDevice(url: string): Promise<Device> {
  const key = await WebCryptoDeviceKey.generate()
  const wire = new WireDoc()
  const engine = await createSession({ device: key, mode: 'desktop', agentId: 'agent', userId: 'user', wire, batchWindowMs: 5, compactAfter: null })
  const relay = await connectRelay(wire, url, () => capability(key, engine.sessionId), engine)
  return { key, engine, wire, relay }
}

/** A second device, enrolled by the owner as `role` before it connects. */
export async function memberDevice(url: string, owner: Device, role: 'writer' | 'reader' = 'writer'): Promise<Device> {
  const key = await WebCryptoDeviceKey.generate()
  await owner.engine.setRole(key.publicKey, role, { label: role })
  await owner.relay.whenAcknowledged()
  const wire = new WireDoc()
  const engine = await SyncEngine.open({ sessionId: owner.engine.sessionId, wire, device: key, keys: new SessionKeyring([owner.engine.keys.current]), mode: 'tab', batchWindowMs: 5, compactAfter: null })
  const relay = await connectRelay(wire, url, () => capability(key, owner.engine.sessionId), engine)
  const closes: string[] = []
  relay.provider.on('connection-close', (e) => closes.push(`${e?.code} ${e?.reason}`))
  await eventually(() => engine.role === role, 8000, `the ${role} role to arrive (closes: ${closes.join('; ') || 'none'})`)
  await relay.whenSynced()
  return { key, engine, wire, relay }
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
