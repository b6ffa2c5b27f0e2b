import type { BrowserSession } from '@kai-sync/browser'
import { early } from './early-input'
import { forget, kept, type EarlyMessage } from './early-outbox'

/**
 * Gives a session what was sent to it before it was open: the messages
 * this page holds and those kept on disk (by any page of this browser, a
 * reload ago or in another tab), each once. Under a Web Lock per session,
 * so two pages opening it at once do not both append; a message already in
 * the session (appended, then the page died before the outbox was cleared)
 * is not appended again. The outbox is cleared only once the session has
 * stored what was appended. A device that may only read the session gets
 * the messages back, kept, to say so.
 */
export async function deliverEarly(session: BrowserSession, fromThisPage: EarlyMessage[], send: (m: EarlyMessage) => void): Promise<{ refused: EarlyMessage[]; unreadable: number }> {
  await early.saved()
  const deliver = async () => {
    const onDisk = await kept(session.sessionId)
    const byId = new Map<string, EarlyMessage>()
    for (const m of [...onDisk.messages, ...fromThisPage]) byId.set(m.id, m)
    const all = [...byId.values()].sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1))
    if (!session.engine.canWrite) return { refused: all, unreadable: onDisk.unreadable }
    const doc = session.engine.session
    for (const m of all) if (!doc.message(m.id)) send(m)
    await session.whenSaved()
    await forget(all.map((m) => m.id))
    return { refused: [], unreadable: onDisk.unreadable }
  }
  if (!('locks' in navigator)) return deliver()
  return navigator.locks.request(`kai-sync/early/${session.sessionId}`, deliver)
}
