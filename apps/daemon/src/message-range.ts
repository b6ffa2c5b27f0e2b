import { KaiError, type Message, type SessionDoc } from '@kai-sync/model'

// GET /session/:id/messages: a page of the history in view order,
// (timestamp, id), after a cursor. A cursor is `<timestamp>:<message id>`,
// a position in that order rather than an index, so messages inserted
// while a client pages (at the end, or anywhere) shift nothing it has not
// read yet: it sees each message after its cursor once, and none twice.
// A page costs O(log n + limit), whatever the length of the session.

export const DEFAULT_PAGE = 100
export const MAX_PAGE = 1000

export interface MessagePage {
  messages: Message[]
  /** The cursor of the last message returned (pass it as `after`); the request's own when the page is empty. */
  next: string | null
  /** True if more messages follow the page now. */
  more: boolean
}

export function cursorOf(message: Pick<Message, 'timestamp' | 'id'>): string {
  return `${message.timestamp}:${message.id}`
}

function parseCursor(cursor: string): { timestamp: number; id: string } {
  const colon = cursor.indexOf(':')
  const timestamp = Number(cursor.slice(0, colon))
  if (colon <= 0 || !Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new KaiError('invalid_input', `after must be a cursor <timestamp>:<message id> as "next" returns it (got ${cursor.slice(0, 60)})`)
  }
  return { timestamp, id: cursor.slice(colon + 1) }
}

export function parseLimit(raw: string | null): number {
  if (raw === null) return DEFAULT_PAGE
  const limit = Number(raw)
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new KaiError('invalid_input', `limit must be an integer from 1 to ${MAX_PAGE}`)
  return limit
}

/** The messages after `after` (all from the start without one), at most `limit`. */
export function messagePage(doc: SessionDoc, after: string | null, limit: number): MessagePage {
  const ids = doc.messageIds()
  const timestampAt = (i: number) => doc.message(ids[i]!)!.timestamp
  let start = 0
  if (after !== null) {
    const at = parseCursor(after)
    // First index whose (timestamp, id) is past the cursor.
    let lo = 0
    let hi = ids.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const t = timestampAt(mid)
      if (t < at.timestamp || (t === at.timestamp && ids[mid]! <= at.id)) lo = mid + 1
      else hi = mid
    }
    start = lo
  }
  const messages = ids.slice(start, start + limit).map((id) => doc.message(id)!)
  const last = messages.at(-1)
  return { messages, next: last ? cursorOf(last) : after, more: start + messages.length < ids.length }
}
