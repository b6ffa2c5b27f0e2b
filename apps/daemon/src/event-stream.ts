import type { IncomingMessage, ServerResponse } from 'node:http'
import { z } from 'zod'
import { AuditEntrySchema, ConflictInfoSchema, MemorySnapshotSchema, MessageSchema, type ConflictInfo, type SessionChange } from '@kai-sync/model'
import { ConfigViewSchema, ConflictListSchema, SyncDetailSchema } from './api-schemas'
import type { HostedSession } from './hosted-session'

// GET /session/:id/events: the session's changes as Server-Sent Events, from
// this device or any other. A `message` event carries the whole message, so
// a client that missed one chunk of a stream still shows the right text. A
// `choice` event asks the client which value of a `user_choice` conflict to
// keep; the answer is POST /session/:id/conflicts/resolve.

const StatusEventSchema = z.object({
  sync: z.enum(['pending', 'saved', 'synced']),
  relay: z.string(),
  role: z.string().optional(),
  moved_to: z.object({ device: z.string(), label: z.string() }).optional(),
}).extend(SyncDetailSchema.shape)

export const SESSION_EVENTS: Record<string, z.ZodType> = {
  ready: z.object({ session_id: z.string() }),
  message: MessageSchema,
  config: ConfigViewSchema,
  audit: AuditEntrySchema,
  memory: MemorySnapshotSchema,
  status: StatusEventSchema,
  conflicts: ConflictListSchema,
  choice: ConflictInfoSchema,
}

const HEARTBEAT_MS = 15_000

export function openEventStream(hosted: HostedSession, req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
  })
  let id = 0
  const send = (event: string, data: unknown) => {
    res.write(`id: ${++id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
  }
  const doc = hosted.engine.session
  const onChange = (change: SessionChange) => {
    for (const messageId of change.messages) {
      const message = doc.message(messageId)
      if (message) send('message', message)
    }
    if (change.config.size > 0 && hosted.ready) send('config', hosted.configView())
    for (const auditId of change.audit) {
      const entry = doc.auditEntry(auditId)
      if (entry) send('audit', entry)
    }
    if (change.memory.size > 0) {
      for (const snapshot of doc.memory()) if (change.memory.has(snapshot.id)) send('memory', snapshot)
    }
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
  // Every open conflict, whenever one opens, closes or gains a value.
  const onConflicts = (open: ConflictInfo[]) => send('conflicts', { conflicts: open })
  const onChoice = (conflict: ConflictInfo) => send('choice', conflict)
  const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS)
  doc.on('change', onChange)
  doc.policies.on('conflicts', onConflicts)
  hosted.on('status', onStatus)
  hosted.on('choice', onChoice)
  send('ready', { session_id: hosted.id })
  onStatus()
  // A client that connects later is still asked what is waiting for an answer.
  for (const conflict of hosted.choices()) onChoice(conflict)
  const close = () => {
    clearInterval(heartbeat)
    doc.off('change', onChange)
    doc.policies.off('conflicts', onConflicts)
    hosted.off('status', onStatus)
    hosted.off('choice', onChoice)
  }
  req.on('close', close)
  res.on('close', close)
}
