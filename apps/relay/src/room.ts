import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { decodeKeyGrant, type SignatureVerifier } from '@kai-sync/crypto'
import { EpochStarts, WireDoc } from '@kai-sync/engine'
import type { StoredUpdate, UpdateKey, UpdateStore } from '@kai-sync/storage'
import { RoomRecords } from './room-records'
import { CloseCode, Refusal } from './close-codes'
import { checkUpdate, prepareUpdate, type PreparedUpdate } from './update-guard'
import type { GuardContext } from './guard-context'
import { RoomRoster } from './room-roster'
import { StreamIndex } from './stream-index'
import { LogCopies } from './log-copies'
import { RoomPresence } from './room-presence'
import type { Participant } from './participant'
import type { Fanout } from './fanout'
import type { Metrics } from './metrics'
import type { Logger } from './log'
import type { RelayLimits } from './limits'
import {
  MESSAGE_AUTH,
  MESSAGE_AWARENESS,
  MESSAGE_QUERY_AWARENESS,
  MESSAGE_SYNC,
  ackMessage,
  syncStep1,
  syncStep2,
  updateMessage,
} from './protocol'

/** What every room of a relay shares. */
export interface RoomHost {
  store: UpdateStore
  verifier: SignatureVerifier
  metrics: Metrics
  log: Logger
  limits: RelayLimits
  fanout?: Fanout | undefined
  /** Called when the last participant left and the room stayed idle. */
  idle(room: Room): void
  /** The room's first client arrived (federation links follow clients). */
  clientsArrived?(room: Room): void
  /** The room's last client left. */
  clientsLeft?(room: Room): void
}

/** Messages a connection may send while it waits to be admitted (a provider opens with two). */
const MAX_WAITING = 32

// Transaction origins, so an update is never sent back where it came from.
const LOADED = Object.freeze({ source: 'storage' })
const FANOUT = Object.freeze({ source: 'fanout' })

/**
 * One session's wire doc in memory, with its roster and the participants
 * connected to it. Every sync step and update of a room runs through one
 * queue, so each update is checked against the state it will be merged
 * into, and stored before anyone else hears of it. (The signatures it
 * carries, which do not depend on that state, are verified from its
 * arrival on: see PreparedUpdate.)
 */
export class Room {
  readonly wire = new WireDoc(new Y.Doc())
  readonly roster: RoomRoster
  /** Each stream's last envelope and the device that opened it, from every merge (stored, client, peer). */
  readonly streams = new StreamIndex()
  /** When each key epoch started, from the owner's grants the room holds: an envelope sealed under an older one after is refused. */
  readonly epochs = new EpochStarts()
  readonly participants = new Set<Participant>()
  readonly presence: RoomPresence
  /** The envelopes in the log, so a copy of one is not stored or sent again. */
  private readonly copies = new LogCopies(this.wire)
  private readonly records: RoomRecords
  private queue: Promise<void> = Promise.resolve()
  private idleTimer: ReturnType<typeof setTimeout> | undefined
  private delta: Uint8Array | null = null
  private closed = false
  private resyncQueued = false
  /** Resolves once every update merged so far is stored and announced. */
  private stored: Promise<void> = Promise.resolve()
  private readonly onUpdate = (update: Uint8Array): void => {
    this.delta = update
  }
  /** When each update arrived (performance.now()), for the latency histograms; kept while it is deferred. */
  private readonly arrivals = new WeakMap<PreparedUpdate, number>()

  private constructor(
    readonly name: string,
    private readonly host: RoomHost,
  ) {
    this.roster = new RoomRoster(name)
    this.records = new RoomRecords(name, { store: host.store, metrics: host.metrics, log: host.log, mergeAfter: host.limits.compactStoredAfter })
    this.presence = new RoomPresence(this.wire.doc, { name, participants: this.participants, broadcast: (m, except) => this.broadcast(m, except), metrics: host.metrics, fanout: host.fanout })
    this.wire.doc.on('update', this.onUpdate)
    this.wire.doc.on('afterTransaction', (tr: Y.Transaction) => {
      const { rosterEntries, envelopes, keyGrants } = this.wire.insertedIn(tr)
      if (envelopes.length > 0) this.streams.add(envelopes)
      this.copies.track(tr, envelopes)
      const changed = rosterEntries.length > 0 && this.roster.addTrusted(rosterEntries)
      // After the roster: a stored room loads its genesis and the owner's grants in one transaction.
      if (keyGrants.length > 0) this.recordEpochStarts(keyGrants)
      if (changed) this.rosterChanged()
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
      update: (u) => room.enqueue(() => room.applyFromFanout(u)),
      awareness: (a) => {
        try {
          room.presence.fromOtherRelay(a)
        } catch {
          host.log.warn('malformed awareness from another relay', { room: name })
        }
      },
      resync: () => room.resync(),
    })
    const stored = await host.store.load(name)
    room.applyStored(stored)
    room.records.loadedBytes(stored.reduce((n, s) => n + s.update.length, 0))
    room.delta = null
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
    if (p.awaitingMembership) this.awaitMembership(p)
    else this.welcome(p)
    if (p.enrolling) this.awaitEnrollment(p)
  }

  /** A handoff target syncs meanwhile, but is refused with 4403 if its roster entry never comes. */
  private awaitEnrollment(p: Participant): void {
    setTimeout(() => {
      if (p.enrolling && this.participants.has(p)) this.refuse(p, new Refusal(CloseCode.Forbidden, 'the handoff target did not enroll in time; start a new handoff'))
    }, this.host.limits.enrollmentDeadlineMs).unref()
  }

  /** Refused with 4403 unless the roster admits the device within the grace. */
  private awaitMembership(p: Participant): void {
    p.awaitingMembership = true
    setTimeout(() => {
      if (p.awaitingMembership && this.participants.has(p)) this.refuse(p, new Refusal(CloseCode.Forbidden, 'this device is not in the session\'s roster'))
    }, this.host.limits.membershipGraceMs).unref()
  }

  /** The protocol's opening: our state vector, the awareness states, and an ack if asked. */
  private welcome(p: Participant): void {
    p.send(syncStep1(this.wire.doc))
    if (!this.presence.empty) p.send(this.presence.statesMessage())
    if (p.wantsAck) {
      const state = ackMessage(Y.decodeStateVector(Y.encodeStateVector(this.wire.doc)))
      this.afterStored(() => p.send(state))
    }
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
    if (p.awaitingMembership) {
      if (p.waiting.length >= MAX_WAITING) throw new Refusal(CloseCode.TooMany, 'too many messages before this device was admitted')
      p.waiting.push(message)
      return
    }
    const d = decoding.createDecoder(message)
    const type = decoding.readVarUint(d)
    this.host.metrics.inc('kai_relay_messages_total', { type: typeName(type) })
    if (type === MESSAGE_SYNC) {
      const step = decoding.readVarUint(d)
      const payload = decoding.readVarUint8Array(d)
      if (step === 0) {
        this.enqueue(async () => {
          let reply: Uint8Array
          try {
            reply = syncStep2(this.wire.doc, payload)
          } catch {
            throw new Refusal(CloseCode.BadRequest, 'sync step 1 carries a malformed state vector')
          }
          // What the reply holds was merged before now: sent once that is stored.
          this.afterStored(() => p.send(reply))
        }, p)
      } else if (step === 1 || step === 2) {
        const update = this.prepare(p, payload)
        this.arrivals.set(update, performance.now())
        this.enqueue(() => this.receiveUpdate(p, update), p)
      } else {
        throw new Refusal(CloseCode.BadRequest, `unknown sync message ${step}`)
      }
    } else if (type === MESSAGE_AWARENESS) {
      this.presence.receive(p, decoding.readVarUint8Array(d))
    } else if (type === MESSAGE_QUERY_AWARENESS) {
      p.send(this.presence.statesMessage())
    } else if (type !== MESSAGE_AUTH) {
      throw new Refusal(CloseCode.BadRequest, `unknown message type ${type}`)
    }
  }

  /** Runs tasks of this room one at a time; a Refusal closes the participant that caused it. */
  private enqueue(task: () => Promise<void>, p?: Participant): void {
    this.queue = this.queue.then(task).catch((e: unknown) => {
      if (e instanceof Refusal && p) this.refuse(p, e)
      else this.host.log.error('room task failed', { room: this.name, error: (e as Error).message })
    })
  }

  refuse(p: Participant, e: Refusal): void {
    this.host.metrics.inc('kai_relay_rejections_total', { code: e.code })
    this.host.log.info('refused', { room: this.name, participant: p.label, code: e.code, reason: e.reason })
    p.close(e.code, e.reason)
  }

  /** Decodes an update on arrival and starts its signature checks (see PreparedUpdate). */
  private prepare(p: Participant, update: Uint8Array): PreparedUpdate {
    const mayWrite = p.device === null || this.roster.isWriter(p.device)
    return prepareUpdate(update, this.guardFor(p), mayWrite)
  }

  private guardFor(p: Participant): GuardContext {
    return { room: this.name, wire: this.wire, roster: this.roster, streams: this.streams, epochs: this.epochs, copies: this.copies, verifier: this.host.verifier, device: p.device, maxStructs: this.host.limits.maxItemsPerUpdate }
  }

  private async receiveUpdate(p: Participant, update: PreparedUpdate): Promise<void> {
    if (!this.participants.has(p)) return
    const verdict = await checkUpdate(update, this.guardFor(p))
    if (verdict === 'defer') {
      if (p.deferred.length >= this.host.limits.maxDeferredUpdates) {
        throw new Refusal(CloseCode.TooMany, 'too many updates that depend on data this relay has not received')
      }
      p.deferred.push(update)
      this.host.metrics.inc('kai_relay_updates_deferred_total')
      return
    }
    const stale = typeof verdict === 'object' ? verdict.stale : []
    const mayCopy = update.decoded !== null && this.copies.mayCopy(update.decoded)
    const delta = this.merge(update.bytes, p, verdict === 'verbatim' && !mayCopy, mayCopy, stale)
    const ack = p.wantsAck ? ackMessage(this.stateOf(update.bytes)) : null
    if (delta) {
      // Stored now (batched with other rooms' writes), told to others once
      // stored, in merge order; meanwhile the next update can be checked.
      const arrived = this.arrivals.get(update)
      const appending = performance.now()
      const stored = this.host.store.append(this.name, delta).then((key) => {
        this.host.metrics.committed('append', appending)
        return key
      })
      this.afterStored(async () => {
        try {
          this.records.appended(await stored, delta.length)
          this.host.metrics.inc('kai_relay_updates_stored_total')
          if (arrived !== undefined) this.host.metrics.stored(arrived)
        } catch (e) {
          this.host.metrics.inc('kai_relay_storage_errors_total')
          this.host.log.error('storage append failed', { room: this.name, error: (e as Error).message })
          // Unacknowledged: the client sends it again when it reconnects.
          p.close(1011, 'the relay could not store the update; reconnect to retry')
          return
        }
        this.broadcast(updateMessage(delta), p)
        if (arrived !== undefined && this.participants.size > 1) this.host.metrics.relayed(arrived)
        this.host.fanout?.publishUpdate(this.name, delta)
        if (ack) p.send(ack)
      })
    } else if (ack) {
      this.afterStored(() => p.send(ack))
    }
    if (delta) await this.retryDeferred()
    if (this.records.mergeDue) await this.compactNow()
  }

  /** Runs `task` once everything merged so far is stored; tasks run in order. */
  private afterStored(task: () => void | Promise<void>): void {
    this.stored = this.stored.then(task).catch((e: unknown) => {
      this.host.log.error('after-store task failed', { room: this.name, error: (e as Error).message })
    })
  }

  /**
   * Applies a checked update; returns what it added (null if nothing).
   * `verbatim` (see Verdict): the update is what it adds, so Yjs is not
   * asked to encode it again; it encodes a delta only while a doc has an
   * 'update' listener, hence the listener is off for that merge.
   * `dropCopies`: copies of envelopes already in the log are deleted in
   * the same transaction (see LogCopies), so the delta holds tombstones.
   * `stale`: log items the guard found stale (see StaleDrop), deleted the
   * same way.
   */
  private merge(update: Uint8Array, origin: unknown, verbatim = false, dropCopies = false, stale: Y.ID[] = []): Uint8Array | null {
    this.delta = null
    const doc = this.wire.doc
    if (verbatim) doc.off('update', this.onUpdate)
    try {
      if (!dropCopies && stale.length === 0) Y.applyUpdate(doc, update, origin)
      else {
        Y.transact(doc, (tr) => {
          Y.applyUpdate(doc, update, origin)
          if (stale.length > 0) this.host.metrics.inc('kai_relay_stale_dropped_total', undefined, this.dropStale(tr, stale))
          if (!dropCopies) return
          const dropped = this.copies.drop(tr)
          if (dropped > 0) this.host.metrics.inc('kai_relay_copies_dropped_total', undefined, dropped)
        }, origin)
      }
    } finally {
      if (verbatim) doc.on('update', this.onUpdate)
    }
    const store = doc.store
    if (store.pendingStructs !== null || store.pendingDs !== null) {
      // The guard integrates nothing it has not checked; anything Yjs would
      // integrate later without asking is dropped here.
      this.host.log.warn('dropped unresolved structs', { room: this.name })
      store.pendingStructs = null
      store.pendingDs = null
      // The guard rules this out for a verbatim update; should it happen,
      // only what was integrated (since the clocks it started at) is kept.
      if (verbatim) return Y.encodeStateAsUpdate(doc, Y.encodeStateVector(Y.parseUpdateMeta(update).from))
    }
    return verbatim ? update : this.delta
  }

  /** Inside the merge's transaction: deletes the stale log items it just integrated; returns how many. */
  private dropStale(tr: Y.Transaction, stale: Y.ID[]): number {
    let dropped = 0
    for (const id of stale) {
      if (id.clock < (tr.beforeState.get(id.client) ?? 0) || id.clock >= Y.getState(tr.doc.store, id.client)) continue
      const item = Y.getItem(tr.doc.store, id)
      if (item instanceof Y.Item && item.parent === this.wire.log && !item.deleted) {
        item.delete(tr)
        dropped++
      }
    }
    return dropped
  }

  private async retryDeferred(): Promise<void> {
    for (const p of this.participants) {
      if (p.deferred.length === 0) continue
      const waiting = p.deferred
      p.deferred = []
      for (const u of waiting) {
        try {
          await this.receiveUpdate(p, u)
        } catch (e) {
          if (e instanceof Refusal) this.refuse(p, e)
          else throw e
          break
        }
      }
    }
  }

  private async applyFromFanout(update: Uint8Array): Promise<void> {
    // Another relay of this deployment checked and stored it.
    this.delta = null
    Y.applyUpdate(this.wire.doc, update, FANOUT)
    const delta = this.delta
    if (delta) this.broadcast(updateMessage(delta), null)
    const { pendingStructs, pendingDs } = this.wire.doc.store
    // It builds on updates this process never heard of: a fanout message
    // was lost. Everything published was stored first, so reload.
    if (pendingStructs !== null || pendingDs !== null) await this.reloadStored('an update from another relay depends on one this relay missed')
    // A client's update held for what just arrived can be merged now.
    else if (delta) await this.retryDeferred()
  }

  /**
   * Trusted stored updates merged into the doc (as on load: a relay checked
   * them before storing). One that does not decode (a write cut short, a
   * damaged disk) must not keep the room from loading: it is quarantined,
   * that is skipped, logged and counted, and its record left where it is
   * (never replaced by a compaction), for an operator to look at.
   */
  private applyStored(stored: readonly StoredUpdate[]): Uint8Array | null {
    this.delta = null
    const damaged = new Set<UpdateKey>()
    Y.transact(this.wire.doc, () => {
      for (const { key, update } of stored) {
        try {
          Y.applyUpdate(this.wire.doc, update, LOADED)
        } catch (e) {
          damaged.add(key)
          this.records.quarantine(key, update.length, e as Error)
        }
      }
    }, LOADED)
    // Their records hold nothing the doc lacks now, so a compaction may replace them.
    this.records.hold(stored.filter((s) => !damaged.has(s.key)).map((s) => s.key))
    return this.delta
  }

  /** Reloads the room from storage after the fanout may have missed updates (see FanoutHandlers.resync). */
  resync(): void {
    if (this.resyncQueued || this.closed) return
    this.resyncQueued = true
    this.enqueue(() => this.reloadStored('the connection to the other relays was restored'))
  }

  /** Only from inside the queue: merges what storage holds and this room lacks, and sends it to the room. */
  private async reloadStored(why: string): Promise<void> {
    this.resyncQueued = false
    if (this.closed) return
    const stored = await this.host.store.load(this.name)
    if (this.closed) return
    const delta = this.applyStored(stored)
    this.delta = null
    this.host.metrics.inc('kai_relay_storage_reloads_total')
    this.host.log.info('room reloaded from storage', { room: this.name, why, added: delta?.length ?? 0 })
    if (delta) {
      this.broadcast(updateMessage(delta), null)
      await this.retryDeferred()
    }
  }

  /** The relay's clocks for the clients an update wrote as. */
  private stateOf(update: Uint8Array): Map<number, number> {
    const out = new Map<number, number>()
    for (const client of Y.parseUpdateMeta(update).to.keys()) out.set(client, Y.getState(this.wire.doc.store, client))
    return out
  }

  broadcast(message: Uint8Array, except: Participant | null): void {
    for (const p of this.participants) if (p !== except) p.send(message)
  }

  /** Participants whose device the roster no longer holds are closed; genesis waits end. */
  private rosterChanged(): void {
    for (const p of this.participants) {
      if (!p.device) continue
      const role = this.roster.member(p.device)?.role
      if (role && role !== 'removed') {
        p.awaitingGenesis = false
        p.enrolling = false
        if (p.awaitingMembership) this.admit(p)
        continue
      }
      if (p.awaitingGenesis && !this.roster.hasGenesis) continue
      if (p.awaitingGenesis && role === undefined) {
        // It came before the room existed; someone else's genesis came
        // first. Its enrollment may follow, as for any early device.
        p.awaitingGenesis = false
        this.awaitMembership(p)
        continue
      }
      if (p.awaitingMembership && role !== 'removed') continue
      if (p.enrolling && role === undefined) continue
      this.refuse(p, new Refusal(CloseCode.Forbidden, role === 'removed' ? 'this device was removed from the session' : 'this device is not in the session\'s roster'))
    }
  }

  /** A waiting device the roster now holds: it gets the opening, then what it sent meanwhile is handled. */
  private admit(p: Participant): void {
    p.awaitingMembership = false
    this.welcome(p)
    const waiting = p.waiting
    p.waiting = []
    try {
      for (const m of waiting) this.receive(p, m)
    } catch (e) {
      this.refuse(p, e instanceof Refusal ? e : new Refusal(CloseCode.BadRequest, 'the message does not decode'))
    }
  }

  /** Replaces every stored update this room merged with one, after the queued work. */
  compactStorage(): Promise<void> {
    return new Promise((resolve) => this.enqueue(() => this.compactNow().finally(resolve)))
  }

  /** Only from inside the queue, once what was merged is stored: the state and the records it replaces are taken together. */
  private async compactNow(): Promise<void> {
    await this.stored
    await this.records.merge(() => Y.encodeStateAsUpdate(this.wire.doc))
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

function typeName(type: number): string {
  return ['sync', 'awareness', 'auth', 'query_awareness'][type] ?? 'unknown'
}
