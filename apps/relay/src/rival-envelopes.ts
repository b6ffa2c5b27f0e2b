import * as Y from 'yjs'
import { decodeEnvelope, equalBytes } from '@kai-sync/crypto'
import type { WireDoc } from '@kai-sync/engine'
import type { Decoded } from './update-view'

// An equivocation (two envelopes a device signed at one position) can reach
// two relays apart: two nodes of one deployment, or two federated relays,
// each given a different one first. If the cheat sent the two as one Yjs
// item id (one wire client and clock), each relay keeps the one it got and
// Yjs ignores the other when it arrives from the other relay, as a struct
// it already has: no replica would ever hold both, none would report the
// equivocation, and the two relays' clients would differ for good without
// anyone knowing. The same goes for any two envelopes sent as one item id.
// So a log item that arrives from another relay under an id this room
// holds with other bytes is a rival the room must show its clients: it is
// appended again, as a new item of the room's own, stored and relayed like
// any update (RoomUpdates.appendRivals), and every replica then holds both
// and judges them (an equivocation freezes the stream there).

/**
 * The envelopes (of session `room`) that `update`'s log items carry under
 * ids `wire` already holds, live, with other bytes, and that the log does
 * not hold elsewhere (`holds`). A decoded update's items carry no parent
 * when they have neighbours, so a held item's place tells: only one in
 * the log counts.
 */
export function shadowedEnvelopes(wire: WireDoc, room: string, update: Decoded, holds: (bytes: Uint8Array) => boolean): Uint8Array[] {
  const store = wire.doc.store
  const out: Uint8Array[] = []
  for (const s of update.structs) {
    if (!(s instanceof Y.Item) || !(s.content instanceof Y.ContentBinary)) continue
    if (s.id.clock >= Y.getState(store, s.id.client) || deletedIn(update, s.id)) continue
    const held = Y.getItem(store, s.id)
    if (!(held instanceof Y.Item) || held.parent !== wire.log || held.deleted || !(held.content instanceof Y.ContentBinary)) continue
    const bytes = s.content.content
    if (equalBytes(held.content.content, bytes) || holds(bytes) || out.some((b) => equalBytes(b, bytes))) continue
    if (isEnvelopeOf(room, bytes)) out.push(bytes)
  }
  return out
}

/**
 * Whether `update` may carry a struct `doc` already holds (some client's
 * first clock in it is below the doc's): only then is it decoded to look
 * for rivals. Updates from another relay almost never do.
 */
export function mayOverlap(doc: Y.Doc, update: Uint8Array): boolean {
  for (const [client, clock] of Y.parseUpdateMeta(update).from) if (clock < Y.getState(doc.store, client)) return true
  return false
}

function deletedIn(update: Decoded, id: Y.ID): boolean {
  return update.ds.clients.get(id.client)?.some((d) => id.clock >= d.clock && id.clock < d.clock + d.len) ?? false
}

function isEnvelopeOf(room: string, bytes: Uint8Array): boolean {
  try {
    const h = decodeEnvelope(bytes).header
    return h.sessionId === room && h.kind !== 'presence'
  } catch {
    return false
  }
}
