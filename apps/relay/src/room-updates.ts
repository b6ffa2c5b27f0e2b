import * as Y from 'yjs'
import type { EpochStarts, WireDoc } from '@kai-sync/engine'
import type { StoredUpdate, UpdateKey } from '@kai-sync/storage'
import { RoomRecords } from './room-records'
import { CloseCode, Refusal } from './close-codes'
import { checkUpdate, prepareUpdate, type PreparedUpdate } from './update-guard'
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

  constructor(
    private readonly room: UpdatesRoom,
    private readonly host: RoomServices,
  ) {
    this.copies = new LogCopies(room.wire)
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
    const mayCopy = update.decoded !== null && this.copies.mayCopy(update.decoded)
    const arrivedDecoded = Array.from(update.envelopes.values(), (e) => e.envelope)
    const delta = this.room.decoded.during(arrivedDecoded, () => this.merging.checked(update.bytes, p, verdict === 'verbatim' && !mayCopy, mayCopy, stale))
    const ack = p.wantsAck ? ackMessage(this.stateOf(update.bytes)) : null
    if (delta) {
      // Stored now (batched with other rooms' writes), told to others once
      // stored, in merge order; meanwhile the next update can be checked.
      const { arrived } = update
      const stored = this.host.metrics.timed('append', () => this.host.store.append(this.room.name, delta))
      this.afterStored(async () => {
        try {
          this.records.appended(await stored, delta.length)
          this.host.metrics.inc('kai_relay_updates_stored_total')
          if (arrived !== undefined) this.host.metrics.stored(arrived)
        } catch (e) {
          this.host.metrics.inc('kai_relay_storage_errors_total')
          this.host.log.error('storage append failed', { room: this.room.name, error: (e as Error).message })
          // Unacknowledged: the client sends it again when it reconnects.
          p.close(1011, 'the relay could not store the update; reconnect to retry')
          return
        }
        this.room.broadcast(updateMessage(delta), p)
        if (arrived !== undefined && this.room.participants.size > 1) this.host.metrics.relayed(arrived)
        this.host.fanout?.publishUpdate(this.room.name, delta)
        if (ack) p.send(ack)
      })
    } else if (ack) {
      this.afterStored(() => p.send(ack))
    }
    if (delta) await this.retryDeferred()
    if (this.records.mergeDue) await this.compactNow()
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
    // Another relay of this deployment checked and stored it.
    const delta = this.merging.capture(() => Y.applyUpdate(this.room.wire.doc, update, FANOUT))
    if (delta) this.room.broadcast(updateMessage(delta), null)
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
  private applyStored(stored: readonly StoredUpdate[]): Uint8Array | null {
    const doc = this.room.wire.doc
    const damaged = new Set<UpdateKey>()
    const delta = this.merging.capture(() => Y.transact(doc, () => {
      for (const { key, update } of stored) {
        try {
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
    const delta = this.applyStored(stored)
    this.host.metrics.inc('kai_relay_storage_reloads_total')
    this.host.log.info('room reloaded from storage', { room: this.room.name, why, added: delta?.length ?? 0 })
    if (delta) {
      this.room.broadcast(updateMessage(delta), null)
      await this.retryDeferred()
    }
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
