import type { IncomingMessage, ServerResponse } from 'node:http'
import { z } from 'zod'
import { AuditEntrySchema, MemorySnapshotSchema, MessageSchema, MessageStatusSchema, type ConflictInfo } from '@kai-sync/model'
import { ConflictInfoSchema } from '@kai-sync/model/exchange-schemas'
import { ConfigViewSchema, ConflictListSchema, SyncDetailSchema } from './api-schemas'
import type { HostedSession } from './hosted-session'
import { eventLogOf, type LoggedEvent } from './session-events'

// GET /session/:id/events: the session's changes as Server-Sent Events, from
// this device or any other. Content events come from the session's event
// log (see session-events.ts): they carry ids, and a client reconnecting
// with `Last-Event-ID` gets exactly what it missed, or a `resync` event
// when that cannot be replayed. `ready`, `status` and `choice` describe the
// present, so they carry no id and are sent afresh on every connection.

const StatusEventSchema = z.object({
  sync: z.enum(['pending', 'saved', 'synced']),
  relay: z.string(),
  role: z.string().optional(),
  moved_to: z.object({ device: z.string(), label: z.string() }).optional(),
}).extend(SyncDetailSchema.shape)

export const SESSION_EVENTS: Record<string, z.core.$ZodType> = {
  ready: z.object({ session_id: z.string(), last_event_id: z.string() }),
  resync: z.object({ reason: z.string() }),
  message: MessageSchema,
  delta: z.object({ id: z.string(), offset: z.number().int().nonnegative(), text: z.string() }),
  message_status: z.object({ id: z.string(), status: MessageStatusSchema }),
  config: ConfigViewSchema,
  audit: AuditEntrySchema,
  memory: MemorySnapshotSchema,
  status: StatusEventSchema,
  conflicts: ConflictListSchema,
  choice: ConflictInfoSchema,
}

export const EVENTS_DESCRIPTION = [
  'Server-Sent Events. First `ready` (`last_event_id`: the id of the newest event, which this connection starts after), then as they happen, from this device or any other:',
  '`message` (a whole message: a new one, or one whose text changed other than at its end), `delta` `{id, offset, text}` (text appended to a message: `offset` is where it starts, in UTF-16 code units of the message\'s text, so a client whose copy is not `offset` long should GET the message again),',
  '`message_status` `{id, status}`, `config`, `audit`, `memory`, `conflicts` (every open conflict, whenever they change): these carry an `id:`.',
  'Reconnect with `Last-Event-ID` (the header, or `?last_event_id=`) to receive exactly the events missed; if they cannot be replayed (the daemon restarted, or they are older than the last 4,096) the stream sends `resync` first: GET /session/{id} (or /messages) again, then follow on.',
  '`status` (sync status, whenever it changes) and `choice` (asks which value of a `user_choice` conflict to keep; answer with POST /session/{id}/conflicts/resolve) carry no id and are sent afresh on every connection. A comment line every 15 s keeps the connection open.',
].join(' ')

const HEARTBEAT_MS = 15_000

export function openEventStream(hosted: HostedSession, req: IncomingMessage, res: ServerResponse, lastEventIdParam?: string | null): void {
  const log = eventLogOf(hosted)
  const header = req.headers['last-event-id']
  const lastEventId = (Array.isArray(header) ? header[0] : header) ?? lastEventIdParam ?? undefined
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
  })
  const send = (event: string, data: unknown) => {
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
  }
  const sendLogged = (e: LoggedEvent) => {
    res.write(`id: ${e.id}\nevent: ${e.event}\ndata: ${e.data}\n\n`)
  }
  let lastStatus = ''
  const onStatus = () => {
    const { state, ...detail } = hosted.syncStatus()
    const status: z.infer<typeof StatusEventSchema> = { sync: state, relay: hosted.relayState, ...detail }
    if (hosted.engine.role) status.role = hosted.engine.role
    if (hosted.movedTo) status.moved_to = hosted.movedTo
    // The engine reports often; a client hears only what changed.
    const text = JSON.stringify(status)
    if (text === lastStatus) return
    lastStatus = text
    send('status', status)
  }
  const onChoice = (conflict: ConflictInfo) => send('choice', conflict)
  const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS)
  // The replay and the subscription happen in one task: no event falls between them.
  const replay = lastEventId ? log.since(lastEventId) : null
  const unsubscribe = log.subscribe(sendLogged)
  hosted.on('status', onStatus)
  hosted.on('choice', onChoice)
  if (replay?.kind === 'resync') send('resync', { reason: replay.reason })
  send('ready', { session_id: hosted.id, last_event_id: replay?.kind === 'replay' ? lastEventId!.trim() : log.head })
  if (replay?.kind === 'replay') for (const e of replay.events) sendLogged(e)
  onStatus()
  // A client that connects later is still asked what is waiting for an answer.
  for (const conflict of hosted.choices()) onChoice(conflict)
  const close = () => {
    clearInterval(heartbeat)
    unsubscribe()
    hosted.off('status', onStatus)
    hosted.off('choice', onChoice)
  }
  req.on('close', close)
  res.on('close', close)
}
