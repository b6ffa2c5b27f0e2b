import * as Y from 'yjs'
import type { WireDoc } from '@kai-sync/engine'
import { CloseCode, Refusal } from './close-codes'
import type { RoomRoster } from './room-roster'
import type { RoomPresence } from './room-presence'
import type { Participant } from './participant'
import type { RelayLimits } from './limits'
import { ackMessage, syncStep1 } from './protocol'

/** Messages a connection may send while it waits to be admitted (a provider opens with two). */
const MAX_WAITING = 32

/** What admission needs of the room (declared here, so this module does not import room.ts). */
export interface AdmissionRoom {
  readonly wire: WireDoc
  readonly roster: RoomRoster
  readonly participants: ReadonlySet<Participant>
  readonly presence: RoomPresence
  /** Handles a message of an admitted participant (throws a Refusal as Room.receive does). */
  receive(p: Participant, message: Uint8Array): void
  refuse(p: Participant, e: Refusal): void
}

/**
 * Who of a room's participants hears it and is heard: a device the
 * roster holds gets the protocol's opening; one it does not hold yet
 * waits (its messages held) for its entry within a grace, a handoff
 * target within the enrollment deadline; one the roster removed, or never
 * admits, is refused.
 */
export class RoomAdmission {
  constructor(
    private readonly room: AdmissionRoom,
    private readonly limits: Pick<RelayLimits, 'enrollmentDeadlineMs' | 'membershipGraceMs'>,
    /** Runs a task once everything merged so far is stored (RoomUpdates.afterStored). */
    private readonly afterStored: (task: () => void) => void,
  ) {}

  /** A participant just joined the room: it is welcomed, or waits for the roster. */
  joined(p: Participant): void {
    if (p.awaitingMembership) this.awaitMembership(p)
    else this.welcome(p)
    if (p.enrolling) this.awaitEnrollment(p)
  }

  /** True if the participant waits to be admitted: its message is held until then. */
  held(p: Participant, message: Uint8Array): boolean {
    if (!p.awaitingMembership) return false
    if (p.waiting.length >= MAX_WAITING) throw new Refusal(CloseCode.TooMany, 'too many messages before this device was admitted')
    p.waiting.push(message)
    return true
  }

  /** Participants whose device the roster no longer holds are closed; genesis waits end. */
  rosterChanged(): void {
    for (const p of this.room.participants) {
      if (!p.device) continue
      const role = this.room.roster.member(p.device)?.role
      if (role && role !== 'removed') {
        p.awaitingGenesis = false
        p.enrolling = false
        if (p.awaitingMembership) this.admit(p)
        continue
      }
      if (p.awaitingGenesis && !this.room.roster.hasGenesis) continue
      if (p.awaitingGenesis && role === undefined) {
        // It came before the room existed; someone else's genesis came
        // first. Its enrollment may follow, as for any early device.
        p.awaitingGenesis = false
        this.awaitMembership(p)
        continue
      }
      if (p.awaitingMembership && role !== 'removed') continue
      if (p.enrolling && role === undefined) continue
      this.room.refuse(p, new Refusal(CloseCode.Forbidden, role === 'removed' ? 'this device was removed from the session' : 'this device is not in the session\'s roster'))
    }
  }

  /** A handoff target syncs meanwhile, but is refused with 4403 if its roster entry never comes. */
  private awaitEnrollment(p: Participant): void {
    setTimeout(() => {
      if (p.enrolling && this.room.participants.has(p)) this.room.refuse(p, new Refusal(CloseCode.Forbidden, 'the handoff target did not enroll in time; start a new handoff'))
    }, this.limits.enrollmentDeadlineMs).unref()
  }

  /** Refused with 4403 unless the roster admits the device within the grace. */
  private awaitMembership(p: Participant): void {
    p.awaitingMembership = true
    setTimeout(() => {
      if (p.awaitingMembership && this.room.participants.has(p)) this.room.refuse(p, new Refusal(CloseCode.Forbidden, 'this device is not in the session\'s roster'))
    }, this.limits.membershipGraceMs).unref()
  }

  /** The protocol's opening: our state vector, the awareness states, and an ack if asked. */
  private welcome(p: Participant): void {
    const doc = this.room.wire.doc
    p.send(syncStep1(doc))
    if (!this.room.presence.empty) p.send(this.room.presence.statesMessage())
    if (p.wantsAck) {
      const state = ackMessage(Y.decodeStateVector(Y.encodeStateVector(doc)))
      this.afterStored(() => p.send(state))
    }
  }

  /** A waiting device the roster now holds: it gets the opening, then what it sent meanwhile is handled. */
  private admit(p: Participant): void {
    p.awaitingMembership = false
    this.welcome(p)
    const waiting = p.waiting
    p.waiting = []
    try {
      for (const m of waiting) this.room.receive(p, m)
    } catch (e) {
      this.room.refuse(p, e instanceof Refusal ? e : new Refusal(CloseCode.BadRequest, 'the message does not decode'))
    }
  }
}
