import { randomBytes } from 'node:crypto'
import type { ConflictInfo, Message, SessionChange } from '@kai-sync/model'
import type { HostedSession } from './hosted-session'

// The session's content changes as numbered events, one log per session
// shared by every event stream, so an id means the same to every client and
// `Last-Event-ID` can replay what a client missed. Ids are
// `<run>.<seq>`: `run` is drawn at each daemon start, so an id from before
// a restart (or older than the kept window) is recognised as unreplayable
// and the stream says `resync` instead of silently skipping events.
//
// Text streamed into a message goes out as `delta` events (only the new
// text), not the whole message again per chunk: a reply of N tokens costs
// O(N) bytes on the stream, not O(N²).

/** Events kept for replay; older ids get `resync`. */
const KEPT_EVENTS = 4096
/** Messages whose last sent text is remembered, to tell an append from an edit. */
const REMEMBERED_MESSAGES = 512

export interface LoggedEvent {
  id: string
  seq: number
  event: 'message' | 'delta' | 'message_status' | 'config' | 'audit' | 'memory' | 'conflicts'
  /** The event's data, serialised once for every client. */
  data: string
}

export type ReplayResult = { kind: 'replay'; events: LoggedEvent[] } | { kind: 'resync'; reason: string }

type Listener = (event: LoggedEvent) => void

export class SessionEventLog {
  readonly run = randomBytes(6).toString('base64url')
  private seq = 0
  private readonly kept: LoggedEvent[] = []
  private readonly listeners = new Set<Listener>()
  /** What the clients were last sent of each recent message: its text and status (insertion order = recency). */
  private readonly sent = new Map<string, { content: string; status: Message['status'] }>()

  constructor(private readonly hosted: HostedSession) {
    const doc = hosted.engine.session
    doc.on('change', this.onChange)
    doc.policies.on('conflicts', this.onConflicts)
  }

  /** The id of the newest event (what a client that is up to date holds). */
  get head(): string {
    return `${this.run}.${this.seq}`
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** The events after `lastEventId`, or why they cannot be replayed. */
  since(lastEventId: string): ReplayResult {
    const match = /^([A-Za-z0-9_-]+)\.(\d+)$/.exec(lastEventId.trim())
    if (!match) return { kind: 'resync', reason: 'the Last-Event-ID is not an id of this stream' }
    if (match[1] !== this.run) return { kind: 'resync', reason: 'the daemon restarted since that event' }
    const seq = Number(match[2])
    if (seq > this.seq) return { kind: 'resync', reason: 'the Last-Event-ID is ahead of this stream' }
    const oldest = this.kept[0]?.seq ?? this.seq + 1
    if (seq < oldest - 1) return { kind: 'resync', reason: 'the missed events are older than the daemon keeps' }
    return { kind: 'replay', events: this.kept.slice(this.kept.length - (this.seq - seq)) }
  }

  private push(event: LoggedEvent['event'], data: unknown): void {
    const seq = ++this.seq
    const logged: LoggedEvent = { id: `${this.run}.${seq}`, seq, event, data: JSON.stringify(data) }
    this.kept.push(logged)
    if (this.kept.length > KEPT_EVENTS) this.kept.splice(0, this.kept.length - KEPT_EVENTS)
    for (const listener of this.listeners) listener(logged)
  }

  private readonly onChange = (change: SessionChange): void => {
    const doc = this.hosted.engine.session
    for (const messageId of change.messages) {
      const message = doc.message(messageId)
      if (message) this.messageChanged(message)
    }
    if (change.config.size > 0 && this.hosted.ready) this.push('config', this.hosted.configView())
    for (const auditId of change.audit) {
      const entry = doc.auditEntry(auditId)
      if (entry) this.push('audit', entry)
    }
    if (change.memory.size > 0) {
      for (const snapshot of doc.memory()) if (change.memory.has(snapshot.id)) this.push('memory', snapshot)
    }
  }

  private readonly onConflicts = (open: ConflictInfo[]): void => this.push('conflicts', { conflicts: open })

  /**
   * A new message, or text edited other than at its end, goes whole; text
   * appended at the end goes as a `delta`; a status change as
   * `message_status`, after the text that came with it.
   */
  private messageChanged(message: Message): void {
    const before = this.sent.get(message.id)
    this.sent.delete(message.id)
    this.sent.set(message.id, { content: message.content, status: message.status })
    if (this.sent.size > REMEMBERED_MESSAGES) this.sent.delete(this.sent.keys().next().value!)
    if (!before || !message.content.startsWith(before.content)) {
      this.push('message', message)
      return
    }
    if (message.content.length > before.content.length) {
      this.push('delta', { id: message.id, offset: before.content.length, text: message.content.slice(before.content.length) })
    }
    if (message.status !== before.status) this.push('message_status', { id: message.id, status: message.status })
  }
}

const logs = new WeakMap<HostedSession, SessionEventLog>()

/** The session's event log, started by its first event stream and kept while the session is open. */
export function eventLogOf(hosted: HostedSession): SessionEventLog {
  let log = logs.get(hosted)
  if (!log) {
    log = new SessionEventLog(hosted)
    logs.set(hosted, log)
  }
  return log
}
