import type * as Y from 'yjs'
import type { RelayLimits } from './limits'
import type { CounterSeries } from './counter-totals'
import * as decoding from 'lib0/decoding'
import { CloseCode, Refusal } from './close-codes'
import type { RoomPresence } from './room-presence'
import type { RoomUpdates } from './room-updates'
import type { Participant } from './participant'
import type { Metrics } from './metrics'
import { MESSAGE_AUTH, MESSAGE_AWARENESS, MESSAGE_QUERY_AWARENESS, MESSAGE_SYNC, syncStep2 } from './protocol'

/**
 * The y-websocket protocol of one room: each message of an admitted
 * participant decoded and sent where it belongs (sync steps to the room's
 * update queue, awareness to its presence). Anything the protocol does not
 * know is refused.
 */
export class RoomDispatch {
  constructor(
    private readonly doc: Y.Doc,
    private readonly presence: RoomPresence,
    private readonly updates: RoomUpdates,
    private readonly metrics: Metrics,
    private readonly limits: Pick<RelayLimits, 'maxItemsPerUpdate' | 'maxMessageBytes'>,
  ) {}

  /** kai_relay_messages_total's series by message type, bound on first use (counted per message). */
  private readonly byType: CounterSeries[] = []

  /** Handles one message; throws a Refusal for anything the protocol forbids. */
  receive(p: Participant, message: Uint8Array): void {
    const d = decoding.createDecoder(message)
    const type = decoding.readVarUint(d)
    const known = Math.min(type, TYPES.length) // every unknown type is one series
    ;(this.byType[known] ??= this.metrics.counter('kai_relay_messages_total', typeName(known))).add()
    if (type === MESSAGE_SYNC) {
      const step = decoding.readVarUint(d)
      const payload = decoding.readVarUint8Array(d)
      if (step === 0) this.answerStep1(p, payload)
      else if (step === 1 || step === 2) this.updates.submit(p, payload)
      else throw new Refusal(CloseCode.BadRequest, `unknown sync message ${step}`)
    } else if (type === MESSAGE_AWARENESS) {
      this.presence.receive(p, decoding.readVarUint8Array(d))
    } else if (type === MESSAGE_QUERY_AWARENESS) {
      p.send(this.presence.statesMessage())
    } else if (type !== MESSAGE_AUTH) {
      throw new Refusal(CloseCode.BadRequest, `unknown message type ${type}`)
    }
  }

  /**
   * Sync step 1 (a state vector): answered in the queue's turn with what
   * the room holds beyond it; a peer relay's, with all the room holds
   * when that fits in one update the peer takes (its limits are taken to
   * be ours). A state vector says how far each Yjs client got, not what
   * it wrote there, so two relays each holding a different envelope under
   * one item id (a cheat's doing) would never send each other either: the
   * whole state lets the peer see the other and relay it as a rival (see
   * rival-envelopes.ts). Peer links open rarely: once per room and peer,
   * and again after a cut.
   */
  private answerStep1(p: Participant, stateVector: Uint8Array): void {
    this.updates.enqueue(async () => {
      let reply: Uint8Array
      try {
        reply = p.device === null ? this.wholeState(stateVector) : syncStep2(this.doc, stateVector)
      } catch {
        throw new Refusal(CloseCode.BadRequest, 'sync step 1 carries a malformed state vector')
      }
      // What the reply holds was merged before now: sent once that is stored.
      this.updates.afterStored(() => p.send(reply))
    }, p)
  }

  /** For a peer: the whole state if it fits the limits, else what lies beyond `stateVector`. */
  private wholeState(stateVector: Uint8Array): Uint8Array {
    let structs = 0
    for (const list of this.doc.store.clients.values()) structs += list.length
    if (structs <= this.limits.maxItemsPerUpdate) {
      const whole = syncStep2(this.doc, WHOLE_STATE)
      if (whole.length <= this.limits.maxMessageBytes) return whole
    }
    return syncStep2(this.doc, stateVector)
  }
}

/** The state vector of an empty doc: the diff beyond it is everything. */
const WHOLE_STATE = new Uint8Array([0])

const TYPES = ['sync', 'awareness', 'auth', 'query_awareness']

function typeName(type: number): string {
  return TYPES[type] ?? 'unknown'
}
