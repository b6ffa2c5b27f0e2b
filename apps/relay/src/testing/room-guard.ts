import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import type { SimGuard, SimMessage, SimNetwork, SimNode } from '@kai-sync/engine/testing'
import type { Room } from '../room'
import { MESSAGE_SYNC } from '../protocol'
import { CloseCode, Refusal } from '../close-codes'
import { testParticipant, type TestParticipant } from './participant'
import { updateFrame } from './clients'

/** One connection the guard refused: whose, with what code, and the update (or sync step) it refused. */
export interface GuardRefusal {
  device: Uint8Array | null
  /** The member's name in the simulated network. */
  label: string
  code: number
  reason: string
  /** Every update this connection sent before it was closed (the refused one among them). */
  updates: Uint8Array[]
}

/**
 * A relay Room as the simulated network's hub: every message a member
 * sends reaches the room as it would over a socket (one connection per
 * time the link comes up, admitted as the relay's upgrade would admit it),
 * and members hear only what the room stored and sent them. A connection
 * the room closes is cut; the member reconnects when the network heals,
 * as a provider does.
 */
export class RoomGuard implements SimGuard {
  readonly refusals: GuardRefusal[] = []
  /** Updates each connection sent, in order: what a refusal refused is among its own. */
  private readonly connections = new Map<SimNode, { participant: TestParticipant; updates: Uint8Array[]; seen: number }>()
  node!: SimNode

  constructor(
    private readonly net: SimNetwork,
    readonly room: Room,
  ) {}

  /** Adds the room to `net` as its hub. */
  static attach(net: SimNetwork, room: Room): { guard: RoomGuard; node: SimNode } {
    const guard = new RoomGuard(net, room)
    guard.node = net.addGuard('relay', room.wire.doc, guard)
    return { guard, node: guard.node }
  }

  open(peer: SimNode): void {
    this.drop(peer)
    const device = peer.device ?? null
    const participant = testParticipant(device, peer.name)
    // As the relay's upgrade admits a capability: a removed device is refused,
    // a device the roster lacks yet waits for its entry, a room without a genesis waits for one.
    const role = device ? this.room.roster.member(device)?.role : undefined
    if (role === 'removed') {
      this.refusals.push({ device, label: peer.name, code: CloseCode.Forbidden, reason: 'removed (at the upgrade)', updates: [] })
      this.net.disconnect(peer, this.node)
      return
    }
    participant.awaitingGenesis = device !== null && !this.room.roster.hasGenesis
    participant.awaitingMembership = this.room.roster.hasGenesis && role === undefined
    const connection = { participant, updates: [] as Uint8Array[], seen: 0 }
    // The room replies (sync step 2) and broadcasts (updates) through send: each becomes a message on the link back.
    participant.send = (message) => {
      const d = decoding.createDecoder(message)
      if (decoding.readVarUint(d) !== MESSAGE_SYNC) return
      const step = decoding.readVarUint(d)
      // Step 0 is the room's own sync request; the network makes its own exchange on connect.
      if (step === 1 || step === 2) this.net.send(this.node, peer, decoding.readVarUint8Array(d))
    }
    participant.close = (code, reason) => {
      if (participant.closedWith !== null) return
      participant.closedWith = code
      participant.reason = reason
      this.refusals.push({ device, label: peer.name, code, reason, updates: connection.updates })
      this.drop(peer)
      this.net.disconnect(peer, this.node)
    }
    this.connections.set(peer, connection)
    this.room.join(participant)
  }

  receive(peer: SimNode, message: SimMessage): void {
    const connection = this.connections.get(peer)
    if (!connection || connection.participant.closedWith !== null) return
    if (message.type === 'update') connection.updates.push(message.update)
    const frame = message.type === 'update' ? updateFrame(message.update) : syncStep1FromStateVector(message.stateVector)
    try {
      this.room.receive(connection.participant, frame)
    } catch (e) {
      // What the relay's connection does with a message refused at once.
      const refusal = e instanceof Refusal ? e : new Refusal(CloseCode.BadRequest, 'the message does not decode')
      connection.participant.close(refusal.code, refusal.reason)
    }
  }

  /** Waits for the room's queue: a sync request sent now is answered only after everything before it is stored. */
  async whenIdle(): Promise<void> {
    const probe = testParticipant(null, 'probe')
    let answered = false
    probe.send = (message) => {
      const d = decoding.createDecoder(message)
      if (decoding.readVarUint(d) === MESSAGE_SYNC && decoding.readVarUint(d) === 1) answered = true
    }
    this.room.join(probe)
    try {
      this.room.receive(probe, syncStep1FromStateVector(Y.encodeStateVector(new Y.Doc())))
      for (let i = 0; !answered; i++) {
        if (i > 20_000) throw new Error('the room did not answer a sync request within 100 s')
        await new Promise((r) => setTimeout(r, i < 50 ? 0 : 5))
      }
    } finally {
      this.room.leave(probe)
    }
  }

  private drop(peer: SimNode): void {
    const previous = this.connections.get(peer)
    if (!previous) return
    this.connections.delete(peer)
    this.room.leave(previous.participant)
  }
}

/** y-websocket's sync step 1 for a state vector. */
function syncStep1FromStateVector(stateVector: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, MESSAGE_SYNC)
  encoding.writeVarUint(e, 0)
  encoding.writeVarUint8Array(e, stateVector)
  return encoding.toUint8Array(e)
}
