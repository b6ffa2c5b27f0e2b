import { deleteDB } from 'lib0/indexeddb'
import { KaiError } from '@kai-sync/model'
import { STORES, committed, type DeviceDb } from './device-db'
import type { BrowserDevice, BrowserSession } from './browser-session'
import { wireDbName } from './wire-persistence'

/** How long leaving waits for the relay to take this device's step-out. */
const RELAY_WAIT_MS = 15_000

/**
 * What leaving did to the session's roster:
 * - `stepped_out`: this device's signed step-out reached the relay; the others see it removed.
 * - `owner`: the owner stays in the roster (the rules let nobody remove it).
 * - `removed`: it was out already.
 * - `not_told`: no relay took the step-out in time (offline, or none set); the owner can still remove it.
 */
export type LeftRoster = 'stepped_out' | 'owner' | 'removed' | 'not_told'

/**
 * Leaves `session` on this device, as `kai leave` does for a daemon, and
 * one step further: a writer or reader first signs itself out of the
 * roster and waits (a while) for the relay to take it. Then the session
 * closes and its keys, volatile state, list entry and wire doc are
 * deleted. Other devices keep the session.
 */
export async function leaveBrowserSession(session: BrowserSession): Promise<LeftRoster> {
  const { engine, relay, device, sessionId } = session
  const role = engine.role
  let roster: LeftRoster = role === 'owner' ? 'owner' : role === 'removed' || role === undefined ? 'removed' : 'not_told'
  if ((await engine.leave()) && relay) {
    // The relay merges the step-out and then refuses this device (4403):
    // either that or its acknowledgement says it holds the entry.
    const refused = new Promise<void>((resolve) => {
      const check = () => {
        if (relay.refusal?.code !== 4403) return
        relay.off('status', check)
        resolve()
      }
      relay.on('status', check)
      check()
    })
    const told = await Promise.race([
      Promise.race([engine.whenIdle().then(() => relay.whenAcknowledged()), refused]).then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), RELAY_WAIT_MS)),
    ])
    if (told) roster = 'stepped_out'
  }
  await session.close()
  await forgetSession(device, sessionId)
  return roster
}

/**
 * Deletes what this origin holds of a session: its keys, volatile state
 * and list entry in one transaction (a kill midway leaves all or none),
 * then the dropped envelopes its engines kept and its wire doc (both
 * ciphertext only). Other contexts holding the wire database open are
 * closed by the deletion (lib0 closes on versionchange).
 */
export async function forgetSession(device: BrowserDevice, sessionId: string): Promise<void> {
  await deleteRecords(device.db, sessionId)
  await device.dropped.remove(sessionId)
  // Tells this origin's other contexts; the entry is gone already.
  await device.catalog.remove(sessionId)
  try {
    await deleteDB(wireDbName(sessionId))
  } catch (cause) {
    throw new KaiError('unavailable', `the session's keys are deleted, but IndexedDB did not delete its stored ciphertext (${wireDbName(sessionId)})`, { cause })
  }
}

async function deleteRecords(db: DeviceDb, sessionId: string): Promise<void> {
  const tx = db.transaction([STORES.keys, STORES.volatile, STORES.catalog], 'readwrite')
  tx.objectStore(STORES.keys).delete(IDBKeyRange.bound([sessionId, -Infinity], [sessionId, Infinity]))
  tx.objectStore(STORES.volatile).delete(IDBKeyRange.bound([sessionId, ''], [sessionId, '\uffff']))
  tx.objectStore(STORES.catalog).delete(sessionId)
  await committed(tx)
}
