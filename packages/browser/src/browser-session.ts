import { ObservableV2 } from 'lib0/observable'
import { SessionKey, equalBytes, type BoxKey, type WebCryptoDeviceKey } from '@kai-sync/crypto'
import { Presence, SyncEngine, WireDoc, createSession, withoutClaims, type SyncStatus } from '@kai-sync/engine'
import type { Mode, VolatileState } from '@kai-sync/model'
import { openDeviceDb, type DeviceDb } from './device-db'
import { loadBoxKey, loadDeviceKey } from './device-key-store'
import { SessionKeyStore } from './session-key-store'
import { SessionCatalog } from './session-catalog'
import { WirePersistence } from './wire-persistence'
import { BroadcastTransport, wireChannelName } from './broadcast-transport'
import { VolatileStore } from './volatile-store'
import { DroppedOwnDb } from './dropped-own-db'
import type { ConnectRelay, RelayConnection, RelayRefusal } from './relay-connection'

/** This browser profile's kai-sync device in one origin: its key, session keys and session list. */
export interface BrowserDevice {
  db: DeviceDb
  key: WebCryptoDeviceKey
  /** X25519, for key grants and handoffs addressed to this device. */
  box: BoxKey
  keys: SessionKeyStore
  catalog: SessionCatalog
  /** What its engines keep of their own envelopes a log dropped before they re-sealed them. */
  dropped: DroppedOwnDb
}

export async function openBrowserDevice(dbName?: string): Promise<BrowserDevice> {
  const db = await openDeviceDb(dbName)
  const [key, box, keys] = await Promise.all([loadDeviceKey(db), loadBoxKey(db), SessionKeyStore.open(db)])
  return { db, key, box, keys, catalog: new SessionCatalog(db), dropped: new DroppedOwnDb() }
}

export interface OpenOptions {
  mode: Mode
  /** How this context shows in others' presence ("side panel", "Pixel 8"). */
  label?: string
  relay?: ConnectRelay | undefined
}

/** What an app shows as the sync state: the engine's, plus whether the relay is reachable. */
export interface BrowserSyncStatus extends SyncStatus {
  /** No network, or a relay is configured and not connected. */
  offline: boolean
  /** A relay is configured: without one, "saved" is as far as sync goes. */
  relay: boolean
  /** The relay's last refusal of this device's connection (4403 once it was removed), until it connects again. */
  relayRefusal: RelayRefusal | null
}

export interface BrowserSessionEvents {
  status: (status: BrowserSyncStatus) => void
}

/**
 * One session open in one JS context: the engine over a wire doc stored in
 * IndexedDB, shared live with the origin's other contexts over
 * BroadcastChannel, presence, and volatile state at rest.
 */
export class BrowserSession extends ObservableV2<BrowserSessionEvents> {
  private closed = false
  /** This context's mode (popup, tab, side panel, mobile, desktop). */
  mode: Mode = 'tab'
  private readonly onNetwork = (): void => this.emitStatus()

  private constructor(
    readonly device: BrowserDevice,
    readonly engine: SyncEngine,
    readonly presence: Presence,
    readonly transport: BroadcastTransport,
    readonly persistence: WirePersistence,
    readonly volatile: VolatileStore,
    readonly relay: RelayConnection | null,
  ) {
    super()
    engine.on('status', this.onNetwork)
    engine.on('moved', this.onMoved)
    engine.roster.on('change', this.onRoster)
    relay?.on('status', this.onNetwork)
    globalThis.addEventListener?.('online', this.onNetwork)
    globalThis.addEventListener?.('offline', this.onNetwork)
  }

  get sessionId(): string {
    return this.engine.sessionId
  }

  /** False once `close` was called: nothing this context writes after that reaches anyone. */
  get open(): boolean {
    return !this.closed
  }

  /**
   * This device handed the session over (a takeover): its claims (the
   * reply it streamed, its tools, its draft) are its successor's now. Drop
   * them at once, while the step-down is still being signed, so no other
   * device waits on a claim nobody will honour and a reload resumes nothing.
   */
  private readonly onMoved = (_to: unknown, from: Uint8Array): void => {
    if (equalBytes(from, this.engine.device.publicKey)) void this.releaseClaims()
  }

  /** The step-down reached this context by the roster (another context of this device signed it). */
  private readonly onRoster = (): void => {
    if (!this.engine.canWrite) void this.releaseClaims()
  }

  /** Drops this context's claims on the session's work, live and at rest (see `withoutClaims`). */
  async releaseClaims(): Promise<void> {
    const current = this.presence.state.volatile
    const released = withoutClaims(current)
    if (JSON.stringify(released) === JSON.stringify(current)) return
    await this.setVolatile({ ...released })
  }

  /**
   * True while something this context wrote is not yet in IndexedDB: a
   * change not sealed or stored, or volatile state (a draft) still being
   * saved. A page should hold back a close then (beforeunload).
   */
  get unsaved(): boolean {
    return this.engine.status.state === 'pending' || this.volatile.saving
  }

  get status(): BrowserSyncStatus {
    const online = typeof navigator === 'undefined' || navigator.onLine
    return {
      ...this.engine.status,
      offline: !online || (this.relay !== null && !this.relay.connected),
      relay: this.relay !== null,
      relayRefusal: this.relay?.refusal ?? null,
    }
  }

  /** Starts a new session owned by this device. */
  static async create(device: BrowserDevice, options: OpenOptions & { agentId: string; userId: string }): Promise<BrowserSession> {
    // Extractable only long enough to be wrapped for a later handoff; the
    // engine and storage get non-extractable copies.
    const handoffable = await SessionKey.generate(0, { extractable: true })
    const usable = await device.keys.usableCopy(handoffable)
    const wire = new WireDoc()
    let sessionId = ''
    const engine = await createSession({
      device: device.key,
      box: device.box,
      exportKey: (epoch) => device.keys.exportForHandoff(sessionId, epoch),
      mode: options.mode,
      label: options.label ?? options.mode,
      agentId: options.agentId,
      userId: options.userId,
      wire,
      key: usable,
      dropped: device.dropped,
    })
    sessionId = engine.sessionId
    await device.keys.save(engine.sessionId, handoffable)
    const persistence = await WirePersistence.open(wire, engine.sessionId)
    const session = await BrowserSession.attach(device, engine, persistence, options)
    await device.catalog.touch(engine.sessionId, { createdAt: Date.now() })
    return session
  }

  /** Opens a session this device holds a key for; `not_found` otherwise. */
  static async open(device: BrowserDevice, sessionId: string, options: OpenOptions): Promise<BrowserSession> {
    const keys = await device.keys.keyring(sessionId)
    const wire = new WireDoc()
    // Load what is stored before the engine starts, so it opens in one pass.
    const persistence = await WirePersistence.open(wire, sessionId)
    let engine: SyncEngine
    try {
      // The engine's keys are not extractable; a handoff target is granted them through the key store's export path.
      const exportKey = (epoch: number) => device.keys.exportForHandoff(sessionId, epoch)
      engine = await SyncEngine.open({ sessionId, wire, device: device.key, box: device.box, keys, mode: options.mode, exportKey, dropped: device.dropped })
    } catch (e) {
      await persistence.destroy()
      throw e
    }
    const session = await BrowserSession.attach(device, engine, persistence, options)
    await device.catalog.touch(sessionId)
    return session
  }

  private static async attach(device: BrowserDevice, engine: SyncEngine, persistence: WirePersistence, options: OpenOptions): Promise<BrowserSession> {
    persistence.acknowledgeTo(engine.registerStore('local', 'indexeddb'))
    const volatile = new VolatileStore(device.db, engine, options.mode)
    const loaded = await volatile.load()
    // Kept from before this device stepped down: not its to continue.
    const restored = engine.canWrite ? loaded : withoutClaims(loaded)
    if (restored !== loaded) void volatile.save(restored)
    const presence = new Presence(engine, { mode: options.mode, label: options.label ?? options.mode, volatile: restored })
    const transport = new BroadcastTransport(engine.wire.doc, presence.awareness, wireChannelName(engine.sessionId))
    const relay = options.relay?.({ sessionId: engine.sessionId, wire: engine.wire, awareness: presence.awareness, engine }) ?? null
    const session = new BrowserSession(device, engine, presence, transport, persistence, volatile, relay)
    session.mode = options.mode
    await presence.publish()
    return session
  }

  /** Updates this context's volatile state: shared live through presence, kept at rest. */
  async setVolatile(patch: Partial<VolatileState>): Promise<void> {
    if (this.closed) return
    const published = this.presence.publish({ volatile: patch })
    await Promise.all([published, this.volatile.save(this.presence.state.volatile)])
  }

  /** Resolves once local changes are sealed and stored, and volatile state is at rest. */
  async whenSaved(): Promise<void> {
    await this.engine.whenIdle()
    await this.volatile.whenSaved()
    await new Promise<void>((resolve) => {
      const check = () => {
        if (this.closed || this.engine.status.state !== 'pending') return resolve()
        setTimeout(check, 5)
      }
      check()
    })
  }

  /**
   * Closes this context. The closing state reaches the other contexts
   * synchronously (so it works from `pagehide`); the rest is best effort.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve()
    this.closed = true
    this.presence.closeNow()
    this.engine.off('moved', this.onMoved)
    this.engine.roster.off('change', this.onRoster)
    globalThis.removeEventListener?.('online', this.onNetwork)
    globalThis.removeEventListener?.('offline', this.onNetwork)
    return (async () => {
      await this.engine.whenIdle().catch(() => undefined)
      this.relay?.destroy()
      this.transport.destroy()
      this.presence.destroy()
      await this.persistence.destroy()
      this.engine.destroy()
      super.destroy()
    })()
  }

  private emitStatus(): void {
    if (!this.closed) this.emit('status', [this.status])
  }
}
