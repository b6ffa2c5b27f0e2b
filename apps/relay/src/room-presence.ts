import type * as Y from 'yjs'
import * as awarenessProtocol from 'y-protocols/awareness'
import { toBase64Url } from '@kai-sync/crypto'
import { CloseCode, Refusal } from './close-codes'
import { ownStates } from './awareness-guard'
import { awarenessMessage } from './protocol'
import type { Participant } from './participant'
import type { Fanout } from './fanout'
import type { Metrics } from './metrics'

/** Awareness ids from other relays of the deployment (fan-out, federated peers), which checked their own clients. */
const RELAYS = 'relays'

// The origin of states another relay of the deployment published, so they are not published back.
const FANOUT = Object.freeze({ source: 'fanout' })

/** What a room's presence needs of the room. */
export interface PresenceRoom {
  readonly name: string
  readonly participants: ReadonlySet<Participant>
  broadcast(message: Uint8Array, except: Participant | null): void
  readonly metrics: Metrics
  readonly fanout?: Fanout | undefined
}

/**
 * A room's presence (y-protocols awareness): the states its participants
 * and the other relays publish, relayed to everyone. The relay reads none
 * of it; it only keeps one device from overwriting or removing another's.
 */
export class RoomPresence {
  readonly awareness: awarenessProtocol.Awareness
  /**
   * Who introduced each awareness client id: a device (base64url), or
   * RELAYS for ids that came from peer relays or fan-out. Only its
   * introducer may update or remove it, so no one overwrites someone
   * else's presence. Kept while the room is loaded, not only while the
   * connection lasts: a device's next connection (its old socket may not
   * have closed yet) goes on with its id, and no one else takes it over
   * meanwhile.
   */
  private readonly holders = new Map<number, string>()

  constructor(
    doc: Y.Doc,
    private readonly room: PresenceRoom,
  ) {
    this.awareness = new awarenessProtocol.Awareness(doc)
    this.awareness.setLocalState(null)
    this.awareness.on('update', this.onChange)
  }

  /** A participant's awareness message: the states of ids it introduced (or new ones) are applied, the rest dropped. */
  receive(p: Participant, update: Uint8Array): void {
    let own: Uint8Array | null
    try {
      // Dropped, not refused: a stock client echoes the states it hears back to us.
      const self = holderOf(p)
      own = ownStates(update, (id) => {
        const holder = this.holders.get(id)
        return holder === undefined || holder === self
      })
      if (own) awarenessProtocol.applyAwarenessUpdate(this.awareness, own, p)
    } catch {
      throw new Refusal(CloseCode.BadRequest, 'malformed awareness update')
    }
    if (own !== update) this.room.metrics.inc('kai_relay_awareness_dropped_total')
  }

  /** States another relay of the deployment published (it checked its own clients). */
  fromOtherRelay(update: Uint8Array): void {
    awarenessProtocol.applyAwarenessUpdate(this.awareness, update, FANOUT)
  }

  /** Every state the room holds, as one awareness message (the answer to a query). */
  statesMessage(): Uint8Array {
    return awarenessMessage(awarenessProtocol.encodeAwarenessUpdate(this.awareness, [...this.awareness.getStates().keys()]))
  }

  get empty(): boolean {
    return this.awareness.getStates().size === 0
  }

  /** A participant left: the states it introduced go with it. */
  leave(p: Participant): void {
    if (p.awarenessIds.size > 0) awarenessProtocol.removeAwarenessStates(this.awareness, [...p.awarenessIds], null)
  }

  destroy(): void {
    this.awareness.destroy()
  }

  private readonly onChange = ({ added, updated, removed }: { added: number[]; updated: number[]; removed: number[] }, origin: unknown): void => {
    const changed = [...added, ...updated, ...removed]
    const p = origin as Participant | null
    const fromParticipant = p !== null && this.room.participants.has(p)
    if (fromParticipant) {
      for (const id of added) p.awarenessIds.add(id)
      for (const id of removed) p.awarenessIds.delete(id)
    }
    const holder = origin === FANOUT ? RELAYS : fromParticipant ? holderOf(p) : undefined
    if (holder !== undefined) for (const id of added) if (!this.holders.has(id)) this.holders.set(id, holder)
    const update = awarenessProtocol.encodeAwarenessUpdate(this.awareness, changed)
    this.room.broadcast(awarenessMessage(update), null)
    if (origin !== FANOUT) this.room.fanout?.publishAwareness(this.room.name, update)
  }
}

function holderOf(p: Participant): string {
  return p.device ? toBase64Url(p.device) : RELAYS
}
