import * as Y from 'yjs'
import { decodeKeyGrant } from '@kai-sync/crypto'
import { EpochStarts, WireDoc } from '@kai-sync/engine'
import type { Refusal } from './close-codes'
import { RoomRoster } from './room-roster'
import { StreamIndex } from './stream-index'
import { DecodedEnvelopes } from './decoded-envelopes'
import { RoomPresence } from './room-presence'
import { RoomUpdates } from './room-updates'
import { RoomAdmission } from './room-admission'
import { RoomDispatch } from './room-dispatch'
import type { RoomServices } from './room-services'
import type { Participant } from './participant'

/** What every room of a relay shares. */
export interface RoomHost extends RoomServices {
  /** Called when the last participant left and the room stayed idle. */
  idle(room: Room): void
  /** The room's first client arrived (federation links follow clients). */
  clientsArrived?(room: Room): void
  /** The room's last client left. */
  clientsLeft?(room: Room): void
}

/**
 * One session's wire doc in memory, with its roster and the participants
 * connected to it. Its parts: admission (who is heard: RoomAdmission), the
 * protocol (RoomDispatch), the update queue every sync step and update
 * runs through, checked against the state it will be merged into and
 * stored before anyone else hears of it (RoomUpdates), and presence
 * (RoomPresence). This class holds them together and the room's life:
 * loading, joining and leaving, unloading once idle.
 */
export class Room {
  readonly wire = new WireDoc(new Y.Doc())
  readonly roster: RoomRoster
  /** Each stream's last envelope and the device that opened it, from every merge (stored, client, peer). */
  readonly streams = new StreamIndex()
  /** The envelopes of the client update being merged, decoded on arrival (see DecodedEnvelopes). */
  readonly decoded = new DecodedEnvelopes()
  /** When each key epoch started, from the owner's grants the room holds: an envelope sealed under an older one after is refused. */
  readonly epochs = new EpochStarts()
  readonly participants = new Set<Participant>()
  readonly presence: RoomPresence
  private readonly updates: RoomUpdates
  private readonly admission: RoomAdmission
  private readonly dispatch: RoomDispatch
  private idleTimer: ReturnType<typeof setTimeout> | undefined
  private closed = false

  private constructor(
    readonly name: string,
    private readonly host: RoomHost,
  ) {
    this.roster = new RoomRoster(name)
    this.presence = new RoomPresence(this.wire.doc, { name, participants: this.participants, broadcast: (m, except) => this.broadcast(m, except), metrics: host.metrics, fanout: host.fanout })
    this.updates = new RoomUpdates(this, host)
    this.admission = new RoomAdmission(this, host.limits, (task) => this.updates.afterStored(task))
    this.dispatch = new RoomDispatch(this.wire.doc, this.presence, this.updates, host.metrics, host.limits)
    const decode = (bytes: Uint8Array) => this.decoded.decode(bytes)
    this.wire.doc.on('afterTransaction', (tr: Y.Transaction) => {
      const { rosterEntries, envelopes, keyGrants } = this.wire.insertedIn(tr)
      if (envelopes.length > 0) this.streams.add(envelopes, decode)
      this.updates.copies.track(tr, envelopes)
      const changed = rosterEntries.length > 0 && this.roster.addTrusted(rosterEntries)
      // After the roster: a stored room loads its genesis and the owner's grants in one transaction.
      if (keyGrants.length > 0) this.recordEpochStarts(keyGrants)
      if (changed) this.admission.rosterChanged()
    })
  }

  /** Grants the guard let through (or a trusted store): the owner's date their epochs. */
  private recordEpochStarts(grants: Uint8Array[]): void {
    const owner = this.roster.owner
    if (!owner) return
    for (const bytes of grants) {
      try {
        this.epochs.recordGrant(decodeKeyGrant(bytes), this.name, owner)
      } catch {
        // not a grant: not this record's to judge
      }
    }
  }

  /** Loads a room from storage (subscribing to other relays first, so nothing falls between). */
  static async load(name: string, host: RoomHost): Promise<Room> {
    const room = new Room(name, host)
    await host.fanout?.subscribe(name, {
      update: (u) => room.updates.fromFanout(u),
      awareness: (a) => {
        try {
          room.presence.fromOtherRelay(a)
        } catch {
          host.log.warn('malformed awareness from another relay', { room: name })
        }
      },
      resync: () => room.resync(),
    })
    room.updates.loaded(await host.store.load(name))
    // Unloaded again unless someone joins (a refused connection loads it too).
    room.scheduleIdle()
    return room
  }

  private scheduleIdle(): void {
    if (this.size === 0 && !this.closed && this.idleTimer === undefined) {
      this.idleTimer = setTimeout(() => this.host.idle(this), this.host.limits.idleRoomMs)
    }
  }

  /** Unloading or unloaded: a new participant must load the room again. */
  get unloaded(): boolean {
    return this.closed
  }

  /** Participants that keep the room loaded: clients and peers connected to us. */
  get size(): number {
    let n = 0
    for (const p of this.participants) if (p.kind !== 'peer-out') n++
    return n
  }

  private get clients(): number {
    let n = 0
    for (const p of this.participants) if (p.kind === 'client') n++
    return n
  }

  join(p: Participant): void {
    if (p.kind !== 'peer-out') {
      clearTimeout(this.idleTimer)
      this.idleTimer = undefined
    }
    this.participants.add(p)
    if (p.kind === 'client' && this.clients === 1) this.host.clientsArrived?.(this)
    this.admission.joined(p)
  }

  leave(p: Participant): void {
    if (!this.participants.delete(p)) return
    p.deferred = []
    this.presence.leave(p)
    if (p.kind === 'client' && this.clients === 0 && !this.closed) this.host.clientsLeft?.(this)
    this.scheduleIdle()
  }

  /** Handles one y-websocket message; throws a Refusal for anything the protocol or the roster forbids. */
  receive(p: Participant, message: Uint8Array): void {
    if (!this.admission.held(p, message)) this.dispatch.receive(p, message)
  }

  refuse(p: Participant, e: Refusal): void {
    this.host.metrics.inc('kai_relay_rejections_total', { code: e.code })
    this.host.log.info('refused', { room: this.name, participant: p.label, code: e.code, reason: e.reason })
    p.close(e.code, e.reason)
  }

  /** Reloads the room from storage after the fanout may have missed updates (see FanoutHandlers.resync). */
  resync(): void {
    this.updates.resync()
  }

  broadcast(message: Uint8Array, except: Participant | null): void {
    for (const p of this.participants) if (p !== except) p.send(message)
  }

  /** Replaces every stored update this room merged with one, after the queued work. */
  compactStorage(): Promise<void> {
    return this.updates.compact()
  }

  /** Waits for queued work, compacts storage, and frees the room. */
  async unload(closeCode?: number, reason = ''): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.idleTimer)
    for (const p of [...this.participants]) {
      // Peers are told to go away even on an idle unload; they reconnect when needed.
      if (closeCode !== undefined || p.kind !== 'client') p.close(closeCode ?? 1001, reason || 'the room is unloaded')
      this.leave(p)
    }
    await this.compactStorage()
    await this.host.fanout?.unsubscribe(this.name)
    this.presence.destroy()
    this.wire.doc.destroy()
    this.host.log.debug('room unloaded', { room: this.name })
  }
}
