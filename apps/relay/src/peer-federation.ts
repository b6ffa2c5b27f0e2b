import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import WebSocket from 'ws'
import { WebCryptoDeviceKey, equalBytes, fromBase64Url, toBase64Url } from '@kai-sync/crypto'
import { CAPABILITY_PARAM, capabilityToParam, signCapability } from '@kai-sync/crypto/capability'
import type { Federation, FederationHost } from './federation'
import type { Participant } from './participant'
import type { Room } from './room'
import { Refusal } from './close-codes'
import { PEER_PARAM } from './protocol'
import type { Logger } from './log'
import type { PreparedUpdate } from './update-guard'

// Federation: a relay started with `--peer ws://other` mirrors each room
// that has clients with the same room on the other relay, over the ordinary
// y-websocket protocol. What arrives from a peer goes through the same
// guard as a client's update; only admission differs. A peer connects with
// a capability signed by its relay key, and a relay admits the keys that
// its own --peer relays publish at GET /federation/key, so two relays
// federate when each names the other.

const KEY_FILE = 'relay-key.pk8'

export class PeerFederation implements Federation {
  private host: FederationHost | undefined
  private readonly links = new Map<string, PeerLink[]>()
  private peerKeys: Uint8Array[] = []
  private lastKeyFetch = 0
  private closed = false

  private constructor(
    private readonly peers: string[],
    private readonly key: WebCryptoDeviceKey,
    private readonly log: Logger,
  ) {}

  /** The relay key lives in the data directory, so peers can pin it across restarts. */
  static async create(peers: string[], dataDir: string, log: Logger): Promise<PeerFederation> {
    mkdirSync(dataDir, { recursive: true })
    const file = join(dataDir, KEY_FILE)
    let key: WebCryptoDeviceKey
    if (existsSync(file)) {
      key = await WebCryptoDeviceKey.fromPkcs8(new Uint8Array(readFileSync(file)))
    } else {
      const fresh = await WebCryptoDeviceKey.generate({ extractable: true })
      writeFileSync(file, await fresh.exportPkcs8(), { mode: 0o600 })
      key = await WebCryptoDeviceKey.fromPkcs8(await fresh.exportPkcs8())
    }
    return new PeerFederation(peers, key, log)
  }

  get publicKeyText(): string {
    return toBase64Url(this.key.publicKey)
  }

  attach(host: FederationHost): void {
    this.host = host
  }

  async isPeerKey(key: Uint8Array): Promise<boolean> {
    if (this.peerKeys.some((k) => equalBytes(k, key))) return true
    // A peer's key is fetched when first needed and again after a miss, at most once a second.
    if (Date.now() - this.lastKeyFetch < 1000) return false
    this.lastKeyFetch = Date.now()
    const keys = await Promise.all(this.peers.map((p) => fetchPeerKey(p)))
    this.peerKeys = keys.filter((k): k is Uint8Array => k !== null)
    return this.peerKeys.some((k) => equalBytes(k, key))
  }

  clientsArrived(room: Room): void {
    if (this.closed || !this.host || this.links.has(room.name)) return
    this.links.set(
      room.name,
      this.peers.map((peer) => new PeerLink(room, peer, this.key, this.log)),
    )
  }

  clientsLeft(room: Room): void {
    for (const link of this.links.get(room.name) ?? []) link.stop()
    this.links.delete(room.name)
  }

  async close(): Promise<void> {
    this.closed = true
    for (const links of this.links.values()) for (const l of links) l.stop()
    this.links.clear()
  }
}

async function fetchPeerKey(peer: string): Promise<Uint8Array | null> {
  try {
    const res = await fetch(peer.replace(/^ws/, 'http').replace(/\/$/, '') + '/federation/key', { signal: AbortSignal.timeout(2000) })
    return res.ok ? fromBase64Url((await res.text()).trim()) : null
  } catch {
    return null
  }
}

/** Our side of one room mirrored with one peer: a participant of the local room that forwards to the peer. */
class PeerLink implements Participant {
  readonly kind = 'peer-out' as const
  readonly device = null
  readonly wantsAck = false
  readonly awarenessIds = new Set<number>()
  readonly label: string
  deferred: PreparedUpdate[] = []
  awaitingGenesis = false
  awaitingMembership = false
  waiting: Uint8Array[] = []
  private ws: WebSocket | null = null
  private stopped = false
  private failures = 0
  private timer: ReturnType<typeof setTimeout> | undefined

  constructor(
    private readonly room: Room,
    private readonly peer: string,
    private readonly key: WebCryptoDeviceKey,
    private readonly log: Logger,
  ) {
    this.label = `peer ${new URL(peer).host}`
    void this.connect()
  }

  private async connect(): Promise<void> {
    if (this.stopped) return
    const capability = await signCapability({ room: this.room.name }, this.key)
    const url = `${this.peer.replace(/\/$/, '')}/${this.room.name}?${CAPABILITY_PARAM}=${capabilityToParam(capability)}&${PEER_PARAM}=1`
    const ws = new WebSocket(url, { perMessageDeflate: false })
    ws.binaryType = 'nodebuffer'
    this.ws = ws
    ws.on('open', () => {
      this.failures = 0
      this.room.join(this)
    })
    ws.on('message', (data: Buffer) => {
      try {
        this.room.receive(this, new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
      } catch (e) {
        this.room.refuse(this, e instanceof Refusal ? e : new Refusal(4400, 'the peer sent a message that does not decode'))
      }
    })
    ws.on('error', () => {})
    ws.on('close', (code: number) => {
      this.room.leave(this)
      if (this.stopped) return
      this.failures++
      if (code >= 4400 && code < 4500) this.log.warn('peer refused the link', { room: this.room.name, peer: this.label, code })
      this.timer = setTimeout(() => void this.connect(), Math.min(10_000, 100 * 2 ** this.failures))
    })
  }

  send(message: Uint8Array): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(message)
  }

  close(code: number, reason: string): void {
    this.ws?.close(code === 1001 || (code >= 4000 && code < 5000) ? code : 1000, reason.slice(0, 120))
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.ws?.close(1000, 'no more clients in this room')
  }
}
