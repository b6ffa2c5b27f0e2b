import * as Y from 'yjs'
import { decodeRosterEntry } from '@kai-sync/crypto'
import { CloseCode, Refusal } from './close-codes'
import type { GuardContext } from './guard-context'
import type { Decoded, Struct, UpdateView } from './update-view'

// A connection whose device may not write inserts nothing into the wire doc
// and deletes nothing from it: not a log entry, not a copy of someone
// else's envelope, not even a content-free tombstone, each of which the
// room would store and send to everyone. Such a device is a reader, or one
// the roster does not hold yet (a handoff target before it enrolls). The
// one thing the roster rules let it sign is a roster entry about itself (a
// step-down, or its enrollment with an invite), so a new roster entry is
// the one insert it may make; the roster checks then decide on it.
//
// Syncing is not writing: the y-websocket client answers the relay's sync
// step 1 with the structs the relay lacks (none, for a reader) and its
// whole delete set, which repeats deletions the relay already has. Only
// what is new to the room's doc counts.

/** Throws a 4403 Refusal if a device that may not write sends anything new to the doc. */
export function checkReadOnly(decoded: Decoded, view: UpdateView, ctx: GuardContext): void {
  if (ctx.device === null || ctx.roster.isWriter(ctx.device)) return
  if (!ctx.roster.hasGenesis) {
    // Creating the room: the update must carry its genesis, which the
    // roster checks accept only from the device the room's id derives from.
    if (decoded.structs.some((s) => isRosterInsert(s) && view.isNew(s))) return
  }
  for (const s of decoded.structs) {
    if (s instanceof Y.Skip || !view.isNew(s)) continue
    if (ctx.roster.hasGenesis && isNewRosterEntry(s, ctx)) continue
    throw new Refusal(CloseCode.Forbidden, ctx.roster.hasGenesis ? 'a device that may not write in this session may add only its own roster entries' : 'this room does not exist yet; its first update must carry the genesis of its session id')
  }
  const deleted = view.deletions(decoded.ds)
  if (deleted === 'missing' || deleted.length > 0) throw new Refusal(CloseCode.Forbidden, 'a device that may not write in this session may delete nothing')
}

/** A new key of the `roster` map, as Y.Map.set encodes one (no neighbours). */
function isRosterInsert(s: Struct): s is Y.Item {
  return s instanceof Y.Item && s.content instanceof Y.ContentBinary && s.origin === null && s.rightOrigin === null && (s.parent as unknown) === 'roster' && s.parentSub !== null
}

function isNewRosterEntry(s: Struct, ctx: GuardContext): boolean {
  if (!isRosterInsert(s)) return false
  try {
    return !ctx.roster.has(decodeRosterEntry((s.content as Y.ContentBinary).content))
  } catch {
    return true // not a roster entry: the roster checks refuse it (4400)
  }
}
