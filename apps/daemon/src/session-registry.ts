import { rmSync } from 'node:fs'
import { SessionKeyring, equalBytes, fromBase64Url, grantKey, type BoxKey, type WebCryptoDeviceKey } from '@kai-sync/crypto'
import { KaiError, type HandoffIntent, type HandoffResponse, type Json } from '@kai-sync/model'
import { Presence, SyncEngine, WireDoc, createSession, transportOrigin, type DroppedOwnStore } from '@kai-sync/engine'
import { acceptHandoff, httpHandoffRelay, initiateHandoff, parseResumeLink } from '@kai-sync/handoff'
import type { UpdateStore } from '@kai-sync/storage'
import { fileSafe, type DataDir } from './data-dir'
import { loadSessionKeys } from './key-files'
import type { Logger } from './log'
import { HostedSession, readSessionFile, type SessionFile } from './hosted-session'
import { WirePersistence } from './wire-persistence'
import { configEntries } from './session-delta'
import { memberOf } from './device-list'
import { connectSessionRelay, type RelayConnection } from './relay-transport'
import { compactionKillPoints, droppedKillPoint, killPoint, storeCompactionTuning, watchHandoffKillPoints } from './test-kill'
import { DroppedOwnFiles } from './dropped-own-files'

/** How long a resume waits for the relay's first sync. */
const RESUME_SYNC_MS = 20_000
/** How long a handoff waits for the relay to hold what this device wrote before it says `unavailable`. */
const HANDOFF_RELAY_MS = 15_000
const GRANT_ORIGIN = transportOrigin('daemon-enrolment')

export interface SessionRegistryOptions {
  dir: DataDir
  store: UpdateStore
  device: WebCryptoDeviceKey
  box: BoxKey
  /** How this device shows in rosters. */
  label: string
  /** The relay new sessions sync through; none: local only. */
  relayUrl?: string
  /** Where handoff links point (the resume page of the web app). */
  appUrl: string
  /** Compact a session's log once it holds this many envelopes (the engine's default otherwise). */
  compactAfter?: number
  log: Logger
  /** Called with every session once it is held (opened, created, joined, resumed): the agent device attaches here. */
  onHosted?: (hosted: HostedSession) => void
}

/** Every session this daemon holds, opened from the store at start and kept live. */
export class SessionRegistry {
  private readonly sessions = new Map<string, HostedSession>()
  /** Where every session's engine keeps its own envelopes the log dropped before it re-sealed them. */
  private readonly dropped: DroppedOwnFiles
  /** The same, as the engines get it (with the kill test's point when armed). */
  private readonly droppedStore: DroppedOwnStore
  constructor(private readonly options: SessionRegistryOptions) {
    this.dropped = new DroppedOwnFiles(options.dir)
    this.droppedStore = droppedKillPoint(this.dropped, (id) => this.sessions.get(id)?.whenStored() ?? Promise.resolve())
  }

  /** Opens every session in the store. */
  async openAll(): Promise<void> {
    for (const room of await this.options.store.rooms()) {
      try {
        await this.open(room)
      } catch (e) {
        this.options.log.error('cannot open a stored session', { session: room, error: (e as Error).message })
      }
    }
  }

  list(): HostedSession[] {
    return [...this.sessions.values()]
  }

  get(sessionId: string): HostedSession {
    const session = this.sessions.get(sessionId)
    if (!session) throw new KaiError('not_found', `no session ${sessionId.slice(0, 60)} on this daemon; kai list shows those it holds`)
    return session
  }

  /** A new session owned by this device. */
  async create(input: { agent_id: string; user_id: string; config?: Record<string, Json | undefined> | undefined }): Promise<HostedSession> {
    const { device, box, label } = this.options
    const config = configEntries(input.config ?? {})
    const engine = await createSession({ device, box, mode: 'headless', agentId: input.agent_id, userId: input.user_id, label, ...this.tuning() })
    if (config.length > 0) {
      engine.session.transact(() => {
        for (const [field, value] of config) engine.session.setConfig(field, value)
      })
    }
    const hosted = await this.host(engine, {}, { saveKeys: true })
    await hosted.settle()
    this.options.log.info('session created', { session: hosted.id })
    return hosted
  }

  /**
   * Opens a session another member enrolled this device in (`enroll` on
   * that device): syncs it from the relay and waits for the key granted to
   * this device's box.
   */
  async join(sessionId: string, waitMs: number): Promise<HostedSession> {
    fileSafe(sessionId)
    if (!this.options.relayUrl) throw new KaiError('unavailable', 'joining a session needs a relay: start the daemon with --relay ws://…')
    const hosted = this.sessions.get(sessionId) ?? (await this.open(sessionId))
    if (!hosted.ready) await waitUntil(hosted, () => hosted.ready, waitMs)
    await hosted.settle()
    return hosted
  }

  /**
   * Enrolls another device by its public keys (a headless peer has no camera
   * for a QR code): a signed roster entry, and every epoch's key wrapped for
   * its box. Only public keys change hands.
   */
  async enroll(sessionId: string, input: { device: string; box: string; role: 'writer' | 'reader'; label: string }): Promise<HostedSession> {
    const hosted = this.get(sessionId)
    hosted.assertWritable()
    const engine = hosted.engine
    const device = fromBase64Url(input.device)!
    const box = fromBase64Url(input.box)!
    if (equalBytes(device, engine.device.publicKey)) throw new KaiError('invalid_input', 'this device is already in the session')
    await engine.setRole(device, input.role, { label: input.label, box })
    if (engine.roster.roleOf(device) !== input.role) throw new KaiError('forbidden', `the roster rules do not let this device make that one a ${input.role}`)
    const grants = await Promise.all(
      engine.keys.epochs().map((epoch) =>
        grantKey({ sessionId, key: engine.keys.get(epoch)!, recipient: device, recipientBox: box, issuer: engine.device }),
      ),
    )
    engine.wire.addKeyGrants(grants.map((g) => g.bytes), GRANT_ORIGIN)
    await hosted.settle()
    this.options.log.info('device enrolled', { session: sessionId, role: input.role, label: input.label })
    return hosted
  }

  /** The seed's initiateHandoff, from this device. */
  async handoff(sessionId: string, intent: HandoffIntent): Promise<HandoffResponse> {
    const hosted = this.get(sessionId)
    if (intent.session_id !== sessionId) throw new KaiError('wrong_session', 'the intent names another session than the path')
    hosted.assertWritable()
    const relayUrl = hosted.relayUrl
    if (!relayUrl) throw new KaiError('unavailable', 'a handoff needs a relay: start the daemon with --relay ws://…')
    const relay = httpHandoffRelay(relayUrl)
    // The relay files a token only from a device its copy of the roster
    // names: a session created a moment ago may not have reached it yet.
    await hosted.whenRelayHolds(HANDOFF_RELAY_MS)
    const { token: _token, ...response } = await initiateHandoff(hosted.engine, intent, {
      appUrl: this.options.appUrl,
      relayUrl,
      relay: {
        ...relay,
        register: (...args) => relay.register(...args).then((registered) => (killPoint('handoff:registered'), registered)),
      },
      volatile: hosted.volatile(),
      label: this.options.label,
    })
    await hosted.settle()
    // The link's fragment holds the invite secret: the logger keeps the URL without it.
    this.options.log.info('handoff initiated', { session: sessionId, transfer: intent.transfer_type, target: intent.target_mode, link: response.resume_url })
    return response
  }

  /** The seed's acceptHandoff, on this device: the session from a resume link. */
  async resume(sessionId: string, link: string, label?: string): Promise<HostedSession> {
    const payload = parseResumeLink(link)
    if (payload.token.sessionId !== sessionId) throw new KaiError('wrong_session', 'the resume link is for another session than the path')
    fileSafe(sessionId)
    if (this.sessions.has(sessionId)) throw new KaiError('conflict', 'this daemon already holds this session')
    const { device, box, log } = this.options
    let presence: Presence | undefined
    const accepted = await acceptHandoff(link, {
      device,
      box,
      mode: 'headless',
      label: label ?? this.options.label,
      engine: { dropped: this.droppedStore },
      relay: httpHandoffRelay(payload.relayUrl),
      connect: async (engine, relayUrl) => {
        killPoint('handoff:claimed')
        watchHandoffKillPoints(engine)
        const own = (presence = this.presenceFor(engine))
        const transport = await connectSessionRelay({ url: relayUrl, engine, device, log, awareness: own.awareness })
        try {
          await transport.whenSynced(RESUME_SYNC_MS)
        } catch (e) {
          transport.destroy()
          own.destroy()
          throw e
        }
        return transport
      },
    })
    const file: SessionFile = { relay: payload.relayUrl, ...(accepted.volatile ? { volatile: accepted.volatile } : {}) }
    const hosted = await this.host(accepted.engine, file, { saveKeys: true, transport: accepted.transport as RelayConnection, ...(presence ? { presence } : {}) })
    await hosted.settle()
    log.info('handoff accepted', { session: sessionId, transfer: accepted.transfer, link })
    return hosted
  }

  /**
   * Removes a device from the session (the owner only, in the engine): a
   * new epoch whose key goes to every other member, and a snapshot under
   * it, so the removed device reads nothing written afterwards; the relay
   * refuses its connection once it has the roster entry.
   */
  async removeDevice(sessionId: string, deviceId: string): Promise<HostedSession> {
    const hosted = this.get(sessionId)
    const member = memberOf(hosted, deviceId, 'device')
    if (equalBytes(member.device, hosted.engine.device.publicKey)) {
      throw new KaiError('invalid_input', `this is this daemon's own device; to drop the session here, run: kai leave ${sessionId}`)
    }
    if (member.role === 'removed') throw new KaiError('conflict', 'this device was removed from the session already')
    await hosted.engine.removeDevice(member.device)
    await hosted.settle()
    this.options.log.info('device removed', { session: sessionId, label: member.label })
    return hosted
  }

  /** Cancels an unspent handoff invite: its link then enrolls nobody. */
  async cancelInvite(sessionId: string, inviteId: string): Promise<HostedSession> {
    const hosted = this.get(sessionId)
    const invite = memberOf(hosted, inviteId, 'invite')
    await hosted.engine.cancelInvite(invite.device)
    await hosted.settle()
    this.options.log.info('invite cancelled', { session: sessionId })
    return hosted
  }

  /**
   * Drops the session from this daemon: closes it, then deletes its keys,
   * its wire doc and its session file. Other devices keep it. The keys go
   * first: killed half way, the session reopens without them ("waiting for
   * key") and a second leave finishes; no secret is left behind.
   */
  async leave(sessionId: string): Promise<void> {
    const hosted = this.get(sessionId)
    this.sessions.delete(sessionId)
    await hosted.close()
    const { dir, store, log } = this.options
    rmSync(dir.sessionKeyFile(sessionId), { force: true })
    await store.deleteRoom(sessionId)
    this.dropped.remove(sessionId)
    rmSync(dir.sessionMetaFile(sessionId), { force: true })
    log.info('session left', { session: sessionId })
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => s.close()))
    this.sessions.clear()
  }

  private tuning(): { compactAfter?: number; dropped: DroppedOwnStore } & ReturnType<typeof compactionKillPoints> {
    return { ...(this.options.compactAfter ? { compactAfter: this.options.compactAfter } : {}), dropped: this.droppedStore, ...compactionKillPoints() }
  }

  /** This daemon's presence in a session: headless, under its label. */
  private presenceFor(engine: SyncEngine): Presence {
    return new Presence(engine, { mode: 'headless', label: this.options.label })
  }

  /** Opens a session from the store (or an empty wire doc, for a join). */
  private async open(sessionId: string): Promise<HostedSession> {
    const { dir, store, device, box } = this.options
    const file = readSessionFile(dir, sessionId)
    const wire = new WireDoc()
    const persistence = await WirePersistence.open(store, sessionId, wire, storeCompactionTuning())
    const keys = new SessionKeyring(await loadSessionKeys(dir, sessionId))
    const engine = await SyncEngine.open({ sessionId, wire, device, box, keys, mode: 'headless', ...this.tuning() })
    return this.host(engine, file, { persistence })
  }

  private async host(
    engine: SyncEngine,
    file: SessionFile,
    options: { persistence?: WirePersistence; saveKeys?: boolean; transport?: RelayConnection; presence?: Presence },
  ): Promise<HostedSession> {
    const persistence = options.persistence ?? (await WirePersistence.open(this.options.store, engine.sessionId, engine.wire, storeCompactionTuning()))
    // A session syncs through the relay it was resumed from, else the daemon's
    // (so a session made while the daemon ran without one syncs once it has one).
    const relay = file.relay ?? this.options.relayUrl
    const presence = options.presence ?? this.presenceFor(engine)
    const hosted = new HostedSession(engine, persistence, this.options.dir, relay ? { ...file, relay } : file, this.options.log, presence)
    // Keys first: a wire doc on disk without its key could never be read.
    if (options.saveKeys) await hosted.saveKeys()
    hosted.saveFile()
    this.sessions.set(hosted.id, hosted)
    const transport = options.transport ?? (relay ? await connectSessionRelay({ url: relay, engine, device: this.options.device, log: this.options.log, awareness: presence.awareness }) : undefined)
    if (transport) hosted.attachTransport(transport)
    this.options.onHosted?.(hosted)
    return hosted
  }
}

/** Resolves when `done()` holds after one of the session's changes; `unavailable` after `ms`. */
function waitUntil(hosted: HostedSession, done: () => boolean, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!done()) return
      cleanup()
      resolve()
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(
        new KaiError(
          'unavailable',
          `session ${hosted.id} has not arrived with a key for this device within ${ms} ms: check that a member ran "kai device add" with this device's keys (kai device), and that the relay is reachable`,
        ),
      )
    }, ms)
    const cleanup = () => {
      clearTimeout(timer)
      hosted.engine.off('key', check)
      hosted.engine.session.off('change', check)
      hosted.off('status', check)
    }
    hosted.engine.on('key', check)
    hosted.engine.session.on('change', check)
    hosted.on('status', check)
    check()
  })
}

