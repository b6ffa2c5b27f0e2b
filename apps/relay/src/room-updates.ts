import * as Y from 'yjs'
import { equalBytes } from '@kai-sync/crypto'
import type { EpochStarts, WireDoc } from '@kai-sync/engine'
import type { StoredUpdate, UpdateKey } from '@kai-sync/storage'
import { RoomRecords } from './room-records'
import type { CounterSeries } from './counter-totals'
import { CloseCode, Refusal } from './close-codes'
import { checkRival, checkUpdate, prepareUpdate, type PreparedUpdate } from './update-guard'
import { mayOverlap, shadowedEnvelopes } from './rival-envelopes'
import type { Decoded } from './update-view'
import type { GuardContext } from './guard-context'
import type { RoomRoster } from './room-roster'
import type { StreamIndex } from './stream-index'
import type { DecodedEnvelopes } from './decoded-envelopes'
import { LogCopies } from './log-copies'
import { RoomMerge } from './room-merge'
import type { Participant } from './participant'
import type { RoomServices } from './room-services'
import { ackMessage, updateMessage } from './protocol'

// Transaction origins, so an update is never sent back where it came from.
const LOADED = Object.freeze({ source: 'storage' })
const FANOUT = Object.freeze({ source: 'fanout' })
const RIVALS = Object.freeze({ source: 'rivals' })

/** What a room's update pipeline needs of the room (declared here, so this module does not import room.ts). */
export interface UpdatesRoom {
  readonly name: string
  readonly wire: WireDoc
  readonly roster: RoomRoster
  readonly streams: StreamIndex
  readonly decoded: DecodedEnvelopes
  readonly epochs: EpochStarts
  readonly participants: ReadonlySet<Participant>
  /** Unloading or unloaded: nothing is reloaded into it any more. */
  readonly unloaded: boolean
  broadcast(message: Uint8Array, except: Participant | null): void
  refuse(p: Participant, e: Refusal): void
}

/**
 * A room's update pipeline. Every sync step and update of a room runs
 * through one queue, so each update is checked against the state it will
 * be merged into, and stored before anyone else hears of it. (The
 * signatures it carries, which do not depend on that state, are verified
 * from its arrival on: see PreparedUpdate.) Stored records and their
 * compaction are RoomRecords'.
 */
export class RoomUpdates {
  /** The envelopes in the log, so a copy of one is not stored or sent again. */
  readonly copies: LogCopies
  private readonly records: RoomRecords
  private readonly merging: RoomMerge
  private queue: Promise<void> = Promise.resolve()
  private resyncQueued = false
  /** Resolves once every update merged so far is stored and announced. */
  private stored: Promise<void> = Promise.resolve()

  /** Counted per update: bound once (see Metrics.counter). */
  private readonly storedCount: CounterSeries

  constructor(
    private readonly room: UpdatesRoom,
    private readonly host: RoomServices,
  ) {
    this.copies = new LogCopies(room.wire)
    this.storedCount = host.metrics.counter('kai_relay_updates_stored_total')
    this.records = new RoomRecords(room.name, { store: host.store, metrics: host.metrics, log: host.log, mergeAfter: host.limits.compactStoredAfter })
    this.merging = new RoomMerge(room.name, room.wire, this.copies, host)
  }

  /** What storage held when the room loaded, merged before anyone joins. */
  loaded(stored: readonly StoredUpdate[]): void {
    this.applyStored(stored)
    this.records.loadedBytes(stored.reduce((n, s) => n + s.update.length, 0))
  }

  /** Runs tasks of this room one at a time; a Refusal closes the participant that caused it. */
  enqueue(task: () => Promise<void>, p?: Participant): void {
    this.queue = this.queue.then(task).catch((e: unknown) => {
      if (e instanceof Refusal && p) this.room.refuse(p, e)
      else this.host.log.error('room task failed', { room: this.room.name, error: (e as Error).message })
    })
  }

  /** Runs `task` once everything merged so far is stored; tasks run in order. */
  afterStored(task: () => void | Promise<void>): void {
    this.stored = this.stored.then(task).catch((e: unknown) => {
      this.host.log.error('after-store task failed', { room: this.room.name, error: (e as Error).message })
    })
  }

  /** A participant's update: decoded and its signature checks started now (see PreparedUpdate), checked and merged in its turn. */
  submit(p: Participant, bytes: Uint8Array): void {
    const mayWrite = p.device === null || this.room.roster.isWriter(p.device)
    // The arrival time travels with the update (also while it is deferred):
    // a WeakMap beside it cost about 0.4 µs per update.
    const update = prepareUpdate(bytes, this.guardFor(p), mayWrite, this.host.metrics.clock())
    this.enqueue(() => this.receiveUpdate(p, update), p)
  }

  /** An update another relay of this deployment published, merged in its turn. */
  fromFanout(update: Uint8Array): void {
    this.enqueue(() => this.applyFromFanout(update))
  }

  /** Reloads the room from storage after the fanout may have missed updates (see FanoutHandlers.resync). */
  resync(): void {
    if (this.resyncQueued || this.room.unloaded) return
    this.resyncQueued = true
    this.enqueue(() => this.reloadStored('the connection to the other relays was restored'))
  }

  /** Replaces every stored update this room merged with one, after the queued work. */
  compact(): Promise<void> {
    return new Promise((resolve) => this.enqueue(() => this.compactNow().finally(resolve)))
  }

  private guardFor(p: Participant): GuardContext {
    const { name, wire, roster, streams, epochs } = this.room
    return { room: name, wire, roster, streams, epochs, copies: this.copies, verifier: this.host.verifier, device: p.device, maxStructs: this.host.limits.maxItemsPerUpdate }
  }

  private async receiveUpdate(p: Participant, update: PreparedUpdate): Promise<void> {
    if (!this.room.participants.has(p)) return
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
    // A peer relay's update may carry rivals of envelopes this room holds
    // under the same item ids (see rival-envelopes.ts): judged before
    // anything of it is merged, appended after it.
    const peer = p.device === null
    const rivals = peer ? await this.peerRivals(update, p) : []
    // A copy from a peer relay is one it keeps live on purpose (a rival it
    // appended; it drops its own clients' copies): dropping it here would
    // send the peer a deletion its guard must refuse, closing the link.
    const mayCopy = !peer && update.decoded !== null && this.copies.mayCopy(update.decoded)
    const arrivedDecoded = Array.from(update.envelopes.values(), (e) => e.envelope)
    const delta = this.room.decoded.during(arrivedDecoded, () => this.merging.checked(update.bytes, p, verdict === 'verbatim' && !mayCopy, mayCopy, stale))
    const ack = p.wantsAck ? ackMessage(this.stateOf(update.bytes)) : null
    if (delta) this.storeThenRelay(delta, p, ack, update.arrived)
    else if (ack) this.afterStored(() => p.send(ack))
    if (rivals.length > 0) this.appendRivals(rivals)
    if (delta) await this.retryDeferred()
    if (this.records.mergeDue) await this.compactNow()
  }

  /**
   * Stored now (batched with other rooms' writes), told to others once
   * stored, in merge order; meanwhile the next update can be checked.
   * `from`: the participant it came from (not sent back to it, closed if
   * storing fails, acknowledged once stored), null for the room's own.
   */
  private storeThenRelay(delta: Uint8Array, from: Participant | null, ack: Uint8Array | null, arrived: number | undefined): void {
    const asked = this.host.metrics.clock()
    const stored = this.host.store.append(this.room.name, delta)
    this.afterStored(async () => {
      try {
        this.records.appended(await stored, delta.length)
        if (asked !== undefined) this.host.metrics.committed('append', asked)
        this.storedCount.add()
        if (arrived !== undefined) this.host.metrics.stored(arrived)
      } catch (e) {
        this.host.metrics.inc('kai_relay_storage_errors_total')
        this.host.log.error('storage append failed', { room: this.room.name, error: (e as Error).message })
        // Unacknowledged: the client sends it again when it reconnects.
        // (The room's own rivals stay in memory: clients get them with their next sync.)
        from?.close(1011, 'the relay could not store the update; reconnect to retry')
        return
      }
      this.room.broadcast(updateMessage(delta), from)
      if (arrived !== undefined && this.room.participants.size > 1) this.host.metrics.relayed(arrived)
      this.host.fanout?.publishUpdate(this.room.name, delta)
      if (ack) from?.send(ack)
    })
  }

  /** The rivals a peer's update carries (see rival-envelopes.ts), each judged as a new envelope; a Refusal closes the peer. */
  private async peerRivals(update: PreparedUpdate, p: Participant): Promise<Uint8Array[]> {
    if (!update.decoded) return []
    const shadowed = shadowedEnvelopes(this.room.wire, this.room.name, update.decoded, (b) => this.copies.holds(b))
    const ctx = this.guardFor(p)
    const out: Uint8Array[] = []
    for (const bytes of shadowed) if (await checkRival(bytes, ctx)) out.push(bytes)
    return out
  }

  /**
   * Only from inside the queue: appends rivals of envelopes the log holds
   * under their item ids as items of the room's own (see
   * rival-envelopes.ts), so its clients hold both; stored, then relayed to
   * everyone, other relays included.
   */
  private appendRivals(rivals: Uint8Array[]): void {
    const fresh = rivals.filter((bytes, i) => !this.copies.holds(bytes) && rivals.findIndex((b) => equalBytes(b, bytes)) === i)
    if (fresh.length === 0) return
    const delta = this.merging.capture(() => this.room.wire.append(fresh, RIVALS))
    this.host.log.warn('appended envelopes another relay holds under item ids this room holds with other bytes', { room: this.room.name, count: fresh.length })
    if (delta) this.storeThenRelay(delta, null, null, undefined)
  }

  private async retryDeferred(): Promise<void> {
    for (const p of this.room.participants) {
      if (p.deferred.length === 0) continue
      const waiting = p.deferred
      p.deferred = []
      for (const u of waiting) {
        try {
          await this.receiveUpdate(p, u)
        } catch (e) {
          if (e instanceof Refusal) this.room.refuse(p, e)
          else throw e
          break
        }
      }
    }
  }

  private async applyFromFanout(update: Uint8Array): Promise<void> {
    // Another relay of this deployment checked and stored it. What it
    // holds under item ids this room holds with other bytes, Yjs would
    // ignore: those are appended as the room's own (see rival-envelopes.ts).
    const doc = this.room.wire.doc
    const rivals = this.rivalsIn(update)
    const delta = this.merging.capture(() => Y.applyUpdate(doc, update, FANOUT))
    if (delta) this.room.broadcast(updateMessage(delta), null)
    if (rivals.length > 0) this.appendRivals(rivals)
    const { pendingStructs, pendingDs } = this.room.wire.doc.store
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
  private applyStored(stored: readonly StoredUpdate[], rivals?: Uint8Array[]): Uint8Array | null {
    const doc = this.room.wire.doc
    const damaged = new Set<UpdateKey>()
    const delta = this.merging.capture(() => Y.transact(doc, () => {
      for (const { key, update } of stored) {
        try {
          if (rivals) rivals.push(...this.rivalsIn(update))
          Y.applyUpdate(doc, update, LOADED)
        } catch (e) {
          damaged.add(key)
          this.records.quarantine(key, update.length, e as Error)
        }
      }
    }, LOADED))
    // Their records hold nothing the doc lacks now, so a compaction may replace them.
    this.records.hold(stored.filter((s) => !damaged.has(s.key)).map((s) => s.key))
    return delta
  }

  /** Only from inside the queue: merges what storage holds and this room lacks, and sends it to the room. */
  private async reloadStored(why: string): Promise<void> {
    this.resyncQueued = false
    if (this.room.unloaded) return
    const stored = await this.host.store.load(this.room.name)
    if (this.room.unloaded) return
    // What another relay stored while this one did not hear it may be a
    // rival of what this room holds under the same item ids (see
    // rival-envelopes.ts). Not looked for on a room's first load: each
    // relay stored the rivals it appended, and a load takes them as any.
    const rivals: Uint8Array[] = []
    const delta = this.applyStored(stored, rivals)
    this.host.metrics.inc('kai_relay_storage_reloads_total')
    this.host.log.info('room reloaded from storage', { room: this.room.name, why, added: delta?.length ?? 0 })
    if (delta) this.room.broadcast(updateMessage(delta), null)
    if (rivals.length > 0) this.appendRivals(rivals)
    if (delta) await this.retryDeferred()
  }

  /** The rivals a trusted update (stored, or from another relay of this deployment) carries of what the room holds (see rival-envelopes.ts). */
  private rivalsIn(update: Uint8Array): Uint8Array[] {
    if (!mayOverlap(this.room.wire.doc, update)) return []
    return shadowedEnvelopes(this.room.wire, this.room.name, Y.decodeUpdate(update) as Decoded, (b) => this.copies.holds(b))
  }

  /** The relay's clocks for the clients an update wrote as. */
  private stateOf(update: Uint8Array): Map<number, number> {
    const out = new Map<number, number>()
    for (const client of Y.parseUpdateMeta(update).to.keys()) out.set(client, Y.getState(this.room.wire.doc.store, client))
    return out
  }

  /** Only from inside the queue, once what was merged is stored: the state and the records it replaces are taken together. */
  private async compactNow(): Promise<void> {
    await this.stored
    await this.records.merge(() => Y.encodeStateAsUpdate(this.room.wire.doc))
  }
}
