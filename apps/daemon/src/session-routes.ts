import { randomUUID } from 'node:crypto'
import type { z } from 'zod'
import {
  KaiError,
  MessageSchema,
  DEFAULT_POLICY,
  isValidConfigValue,
  parseField,
  type Json,
  type PolicyTarget,
} from '@kai-sync/model'
import { HandoffIntentSchema, SessionRecordSchema } from '@kai-sync/model/exchange-schemas'
import { HandoffResponseSchema } from '@kai-sync/model/rest-schemas'
import {
  AppendMessageBodySchema,
  ConfigPatchBodySchema,
  ConfigViewSchema,
  ConflictListSchema,
  CreateSessionBodySchema,
  EmptySchema,
  EnrollDeviceBodySchema,
  HostedRecordSchema,
  JoinBodySchema,
  MemberListSchema,
  PolicyListSchema,
  ResolveConflictBodySchema,
  SetPolicyBodySchema,
  ResumeBodySchema,
  SessionListSchema,
  type SessionSummarySchema,
  MessagePageSchema,
  StreamChunkBodySchema,
  StreamLineSchema,
  SyncBodySchema,
  SyncResponseSchema,
} from './api-schemas'
import { jsonRoute, ndjsonBody, streamRoute, type AnyRoute } from './route'
import type { SessionRegistry } from './session-registry'
import type { HostedSession } from './hosted-session'
import type { ClientKeys } from './client-keys'
import { applySessionDelta, configEntries } from './session-delta'
import { verifyDeltaSignature, DELTA_SIGNING_DOMAIN } from './delta-signature'
import { EVENTS_DESCRIPTION, SESSION_EVENTS, openEventStream } from './event-stream'
import { DEFAULT_PAGE, MAX_PAGE, messagePage, parseLimit } from './message-range'
import { deviceList } from './device-list'

// The session routes: the seed's four (GET /session/:id, /sync, /handoff,
// /resume) and the rest a program or the CLI needs. Every write answers
// once it is sealed and stored on this disk (ciphertext), not before.

type Summary = z.input<typeof SessionSummarySchema>

/** The streaming message a stream request writes into; throws before anything is applied. */
function streamTargetIn(registry: SessionRegistry, params: Record<string, string>): { hosted: HostedSession; message: z.infer<typeof MessageSchema> } {
  const hosted = registry.get(params.id!)
  hosted.assertWritable()
  const message = hosted.engine.session.message(params.message!)
  if (!message) throw new KaiError('not_found', `no message ${params.message!.slice(0, 60)} in this session`)
  if (message.status !== 'streaming') throw new KaiError('conflict', `this message has ended (${message.status}); start a new one with status: streaming`)
  return { hosted, message }
}

export function summaryOf(hosted: HostedSession): Summary {
  const { state, ...detail } = hosted.syncStatus()
  const summary: Summary = {
    session_id: hosted.id,
    ready: hosted.ready,
    sync: state,
    relay: hosted.relayState,
    ...detail,
  }
  const role = hosted.engine.role
  if (role) summary.role = role
  if (hosted.movedTo) summary.moved_to = hosted.movedTo
  if (hosted.ready) {
    const record = hosted.record()
    Object.assign(summary, {
      agent_id: record.agent_id,
      user_id: record.user_id,
      created_at: record.created_at,
      updated_at: record.updated_at,
      messages: record.messages.length,
    })
  }
  return summary
}

const SYNC_DESCRIPTION = `Applies a SessionDelta signed by a client key registered with POST /clients, all or nothing.
The signature is Ed25519 over the bytes UTF-8("${DELTA_SIGNING_DOMAIN}") || 0x00 || UTF-8(JCS(delta)),
where JCS is RFC 8785 canonical JSON of \`delta\` exactly as sent, sent as unpadded base64url.
Messages, audit entries and memory snapshots are keyed by id: an id the session already has keeps its
first version, so a delta sent twice changes nothing. This daemon's device signs what it writes, so it is
recorded as their author and actor, whatever \`device_id\`, \`author\` or \`actor\` the delta names.
Answers with the open conflicts, if any.`

function policiesOf(hosted: HostedSession): { policies: Record<string, z.infer<typeof PolicyListSchema>['default']>; default: z.infer<typeof PolicyListSchema>['default'] } {
  if (!hosted.ready) hosted.record() // throws `unavailable` with the reason
  const policies = hosted.engine.session.policies.settings()
  return { policies, default: policies.default ?? DEFAULT_POLICY }
}

const STREAM_DESCRIPTION = [
  'Start the message with POST /session/{id}/messages and status: streaming. With content-type: application/json the body is one chunk.',
  'With content-type: application/x-ndjson the body is a whole reply, one JSON object per line, sent as the model produces it (a chunked request body): each line is applied as soon as it arrives, so other devices see the reply grow while the request is still open, and the answer (the final message) comes once the body ends and everything is stored on this disk.',
  'A line that is not JSON (malformed) or not a chunk (invalid_input), or any line after done: true (invalid_input), ends the request with 400 naming the line: the lines before it stay applied (they may be on other devices already), that line and those after it are not, and the message stays streaming.',
  'A client that disconnects mid-body leaves the message as far as the last whole line it sent, stored, and still streaming: stream into it again, or complete it, with another request.',
].join(' ')

export function sessionRoutes(registry: SessionRegistry, clients: ClientKeys): AnyRoute[] {
  const session = (params: Record<string, string>) => registry.get(params.id!)
  const streamTarget = (params: Record<string, string>) => streamTargetIn(registry, params)
  return [
    jsonRoute({
      method: 'GET', path: '/sessions', operationId: 'listSessions', tag: 'sessions', auth: true,
      summary: 'The sessions this daemon holds',
      response: SessionListSchema,
      handle: () => ({ sessions: registry.list().map(summaryOf) }),
    }),
    jsonRoute({
      method: 'POST', path: '/sessions', operationId: 'createSession', tag: 'sessions', auth: true, status: 201,
      summary: 'Create a session owned by this device',
      body: CreateSessionBodySchema,
      response: SessionRecordSchema,
      handle: async ({ body }) => (await registry.create(body)).record(),
    }),
    jsonRoute({
      method: 'GET', path: '/session/:id', operationId: 'getSession', tag: 'seed', auth: true,
      summary: 'The SessionRecord (seed), and this device\'s sync status beside it',
      errors: ['not_found', 'unavailable'],
      response: HostedRecordSchema,
      handle: ({ params }) => {
        const hosted = session(params)
        return { ...hosted.record(), sync: { ...hosted.syncStatus(), relay: hosted.relayState } }
      },
    }),
    jsonRoute({
      method: 'POST', path: '/session/:id/sync', operationId: 'syncSession', tag: 'seed', auth: true,
      summary: 'Apply a signed SessionDelta (seed)',
      description: SYNC_DESCRIPTION,
      errors: ['not_found', 'bad_signature', 'wrong_session', 'forbidden'],
      body: SyncBodySchema,
      response: SyncResponseSchema,
      handle: async ({ params, body }) => {
        const hosted = session(params)
        // The signature first: an unsigned body is not looked at further.
        await verifyDeltaSignature(body.delta, body.signature, clients.publicKeys())
        applySessionDelta(hosted, body.delta)
        await hosted.settle()
        const { conflicts } = hosted.record()
        return conflicts.length > 0 ? { success: true as const, conflicts } : { success: true as const }
      },
    }),
    jsonRoute({
      method: 'POST', path: '/session/:id/handoff', operationId: 'initiateHandoff', tag: 'seed', auth: true,
      summary: 'Hand the session off to another mode or device (seed)',
      description: 'Returns the QR code of a resume link, valid once for five minutes. Needs a relay.',
      errors: ['not_found', 'wrong_session', 'forbidden', 'unavailable'],
      body: HandoffIntentSchema,
      response: HandoffResponseSchema,
      handle: ({ params, body }) => registry.handoff(params.id!, body),
    }),
    jsonRoute({
      method: 'POST', path: '/session/:id/resume', operationId: 'resumeHandoff', tag: 'seed', auth: true, status: 201,
      summary: 'Accept a handoff on this device from its resume link (seed)',
      description: [
        'The link is checked whole before the relay is asked, so a refused link spends nothing; once this device has enrolled, a writer grants it the session keys (the link carries none).',
        'Errors: malformed (400): the link was changed or cut short; unsupported_version (400): a link format from another kai-sync version;',
        'bad_signature (401): the token or the invite secret in the link was changed; wrong_session (400): the link is for another session than the path;',
        'forbidden (403): the device that made the link may no longer hand the session off; not_found (404): the relay has no record of this handoff;',
        'expired (410): the five minutes are over; already_used (409): another device used the link; conflict (409): this daemon already holds the session;',
        'unavailable (503): the relay cannot be reached, or no writer granted this device the keys in time (open the link again while the source is online: the same device may retry).',
      ].join(' '),
      errors: ['malformed', 'unsupported_version', 'bad_signature', 'wrong_session', 'forbidden', 'not_found', 'expired', 'already_used', 'conflict', 'unavailable'],
      body: ResumeBodySchema,
      response: SessionRecordSchema,
      handle: async ({ params, body }) => (await registry.resume(params.id!, body.resume_url, body.label)).record(),
    }),
    jsonRoute({
      method: 'POST', path: '/session/:id/messages', operationId: 'appendMessage', tag: 'sessions', auth: true, status: 201,
      summary: 'Append a message, or start one to stream into (status: streaming)',
      errors: ['not_found', 'forbidden'],
      body: AppendMessageBodySchema,
      response: MessageSchema,
      handle: async ({ params, body }) => {
        const hosted = session(params)
        hosted.assertWritable()
        const input = { id: body.id ?? randomUUID(), role: body.role, content: body.content, ...(body.timestamp !== undefined ? { timestamp: body.timestamp } : {}), ...(body.metadata ? { metadata: body.metadata } : {}) }
        const doc = hosted.engine.session
        const message = body.status === 'streaming' ? doc.startStream(input) : doc.appendMessage(input)
        await hosted.settle()
        return message
      },
    }),
    jsonRoute({
      method: 'GET', path: '/session/:id/messages', operationId: 'listMessages', tag: 'sessions', auth: true,
      summary: 'A page of the history, in view order, after a cursor',
      description: `Query: \`after\` (a cursor \`<timestamp>:<message id>\`, as \`next\` returns it; none: from the first message) and \`limit\` (1 to ${MAX_PAGE}, default ${DEFAULT_PAGE}). The order is (timestamp, id) and a cursor is a position in it, not an index: messages inserted while a client pages shift nothing after its cursor, so paging on with \`next\` sees every message after the cursor once. A message inserted before the cursor (an older timestamp, from a device that was offline) is not on later pages: follow GET /session/{id}/events for those. \`more\` says whether messages followed the page when it was read. A page costs the same at any session length.`,
      query: [
        { name: 'after', type: 'string', description: 'A cursor `<timestamp>:<message id>` (as `next` returns it): the page starts after it' },
        { name: 'limit', type: 'integer', description: `At most this many messages (1 to ${MAX_PAGE}, default ${DEFAULT_PAGE})` },
      ],
      errors: ['not_found', 'unavailable', 'invalid_input'],
      response: MessagePageSchema,
      handle: ({ params, query }) => {
        const hosted = session(params)
        if (!hosted.ready) hosted.record() // throws `unavailable` with the reason
        return messagePage(hosted.engine.session, query.get('after'), parseLimit(query.get('limit')))
      },
    }),
    jsonRoute({
      method: 'POST', path: '/session/:id/messages/:message/stream', operationId: 'streamIntoMessage', tag: 'sessions', auth: true,
      summary: 'Append text to a streaming message (one chunk as JSON, or a whole reply as NDJSON); done: true completes it',
      description: STREAM_DESCRIPTION,
      errors: ['not_found', 'forbidden', 'conflict'],
      body: StreamChunkBodySchema,
      response: MessageSchema,
      handle: async ({ params, body }) => {
        const { hosted, message } = streamTarget(params)
        const doc = hosted.engine.session
        doc.transact(() => {
          if (body.text) doc.streamText(message.id, body.text)
          if (body.done) doc.finishStream(message.id)
        })
        await hosted.settle()
        return doc.message(message.id)!
      },
      ndjson: ndjsonBody({
        line: StreamLineSchema,
        description: 'One JSON object per line: `{"text": "…"}` appends, `{"done": true}` (or `{"text": "…", "done": true}`) completes the message and must be the last line.',
        handle: async ({ params }, lines) => {
          const { hosted, message } = streamTarget(params)
          const doc = hosted.engine.session
          let done = false
          try {
            for await (const line of lines) {
              if (done) throw new KaiError('invalid_input', `line ${lines.lines}: nothing may follow done: true (the message is complete)`)
              // Each line in its own transaction: the engine batches them into envelopes as they come.
              doc.transact(() => {
                if (line.text) doc.streamText(message.id, line.text)
                if (line.done) doc.finishStream(message.id)
              })
              done = line.done
            }
          } finally {
            // Whatever was applied is stored before the answer (or the cut connection) ends the request.
            await hosted.settle()
          }
          return doc.message(message.id)!
        },
      }),
    }),
    jsonRoute({
      method: 'PATCH', path: '/session/:id/config', operationId: 'setConfig', tag: 'sessions', auth: true,
      summary: 'Set config fields (each write supersedes the values this device has seen)',
      errors: ['not_found', 'forbidden'],
      body: ConfigPatchBodySchema,
      response: ConfigViewSchema,
      handle: async ({ params, body }) => {
        const hosted = session(params)
        hosted.assertWritable()
        const doc = hosted.engine.session
        const fields = configEntries(body as Record<string, Json | undefined>)
        doc.transact(() => {
          for (const [field, value] of fields) doc.setConfig(field, value)
        })
        await hosted.settle()
        return hosted.configView()
      },
    }),
    jsonRoute({
      method: 'GET', path: '/session/:id/conflicts', operationId: 'listConflicts', tag: 'sessions', auth: true,
      summary: 'The open conflicts, as the conflict policies report them',
      errors: ['not_found'],
      response: ConflictListSchema,
      handle: ({ params }) => ({ conflicts: session(params).record().conflicts }),
    }),
    jsonRoute({
      method: 'POST', path: '/session/:id/conflicts/resolve', operationId: 'resolveConflict', tag: 'sessions', auth: true,
      summary: 'Resolve an open conflict by writing the value to keep',
      description: 'Through the session\'s conflict policies: the write supersedes every conflicting value, which closes the conflict on every replica once they have it. 404 `not_found` if the field has no open conflict (resolved already, here or on another device).',
      errors: ['not_found', 'forbidden', 'invalid_input'],
      body: ResolveConflictBodySchema,
      response: ConflictListSchema,
      handle: async ({ params, body }) => {
        const hosted = session(params)
        hosted.assertWritable()
        const field = parseField(body.field)
        if (field.kind === 'config' && !isValidConfigValue(field.key, body.value)) throw new KaiError('invalid_input', `${JSON.stringify(body.value).slice(0, 60)} is not a valid value for ${body.field}`)
        hosted.engine.session.policies.resolveConflict(body.field, body.value)
        await hosted.settle()
        return { conflicts: hosted.record().conflicts }
      },
    }),
    jsonRoute({
      method: 'GET', path: '/session/:id/policies', operationId: 'listPolicies', tag: 'sessions', auth: true,
      summary: 'The conflict policies set in the session',
      errors: ['not_found', 'unavailable'],
      response: PolicyListSchema,
      handle: ({ params }) => policiesOf(session(params)),
    }),
    jsonRoute({
      method: 'POST', path: '/session/:id/policies', operationId: 'setPolicy', tag: 'sessions', auth: true,
      summary: 'Set (or clear, with null) the conflict policy of a target',
      description: 'Targets: `default`, `message.content`, `config.<key>`. Policies: `merge` (the CRDT result), `timestamp` (latest hybrid clock wins), `manual` (both values kept and reported as a conflict until resolved), `user_choice` (as manual; an app asks its user). The setting is stored in the session and syncs like any write.',
      errors: ['not_found', 'forbidden', 'invalid_input'],
      body: SetPolicyBodySchema,
      response: PolicyListSchema,
      handle: async ({ params, body }) => {
        const hosted = session(params)
        hosted.assertWritable()
        if (!hosted.ready) hosted.record() // throws `unavailable` with the reason
        hosted.engine.session.policies.setPolicy(body.target as PolicyTarget, body.policy)
        await hosted.settle()
        return policiesOf(hosted)
      },
    }),
    streamRoute({
      method: 'GET', path: '/session/:id/events', operationId: 'sessionEvents', tag: 'sessions', auth: true,
      summary: 'Server-Sent Events of the session\'s changes',
      description: EVENTS_DESCRIPTION,
      errors: ['not_found'],
      query: [{ name: 'last_event_id', type: 'string', description: 'As the Last-Event-ID header (which wins), for clients that cannot set headers' }],
      events: SESSION_EVENTS,
      open: ({ params, query }, req, res) => openEventStream(session(params), req, res, query.get('last_event_id')),
    }),
    jsonRoute({
      method: 'GET', path: '/session/:id/devices', operationId: 'listDevices', tag: 'devices', auth: true,
      summary: 'The session\'s devices (label, role, mode, last seen, this one marked) and its pending invites',
      description: 'From the signed roster. A daemon keeps no presence: `last_seen` and `mode` are those of the device\'s newest message or audit entry in the session (absent if it wrote none, or before this daemon holds a key). Removed devices stay listed with role `removed`. `invites` are the handoff links not used, cancelled or retired yet.',
      errors: ['not_found'],
      response: MemberListSchema,
      handle: ({ params }) => deviceList(session(params)),
    }),
    jsonRoute({
      method: 'DELETE', path: '/session/:id/devices/:device', operationId: 'removeDevice', tag: 'devices', auth: true,
      summary: 'Remove a device from the session (owner only)',
      description: 'Signs its removal, starts a new key epoch granted to every other member and re-snapshots the session under it, so the removed device reads nothing written afterwards; the relay refuses its connection (close code 4403). Errors: invalid_input (400): not a device key, or this daemon\'s own device (use DELETE /session/{id} to leave); not_found (404): no such device in the roster; forbidden (403): this device is not the owner, or the device is the owner; conflict (409): removed already.',
      errors: ['not_found', 'invalid_input', 'forbidden', 'conflict'],
      response: MemberListSchema,
      handle: async ({ params }) => deviceList(await registry.removeDevice(params.id!, params.device!)),
    }),
    jsonRoute({
      method: 'DELETE', path: '/session/:id/invites/:invite', operationId: 'cancelInvite', tag: 'devices', auth: true,
      summary: 'Cancel a handoff invite that was not used yet: its link then enrolls nobody',
      description: 'Errors: invalid_input (400): not an invite key; not_found (404): no such invite; conflict (409): used, cancelled or retired already; forbidden (403): only the device that made the link or the owner may cancel it.',
      errors: ['not_found', 'invalid_input', 'forbidden', 'conflict'],
      response: MemberListSchema,
      handle: async ({ params }) => deviceList(await registry.cancelInvite(params.id!, params.invite!)),
    }),
    jsonRoute({
      method: 'DELETE', path: '/session/:id', operationId: 'leaveSession', tag: 'sessions', auth: true,
      summary: 'Leave the session on this device: close it and delete its keys, wire doc and session file here',
      description: 'Other devices keep the session; this one stays in its roster until the owner removes it (DELETE /session/{id}/devices/{device} there).',
      errors: ['not_found'],
      response: EmptySchema,
      handle: async ({ params }) => {
        await registry.leave(params.id!)
        return {}
      },
    }),
    jsonRoute({
      method: 'POST', path: '/session/:id/devices', operationId: 'enrollDevice', tag: 'devices', auth: true, status: 201,
      summary: 'Enroll another device by its public keys (see GET /device on it)',
      description: 'Signs a roster entry for the device and wraps every epoch\'s session key for its box key. The device then joins with POST /session/:id/join. Only public keys are exchanged.',
      errors: ['not_found', 'forbidden'],
      body: EnrollDeviceBodySchema,
      response: MemberListSchema,
      handle: async ({ params, body }) => {
        return deviceList(await registry.enroll(params.id!, body))
      },
    }),
    jsonRoute({
      method: 'POST', path: '/session/:id/join', operationId: 'joinSession', tag: 'devices', auth: true,
      summary: 'Open a session a member enrolled this device in, from the relay',
      errors: ['invalid_input', 'unavailable'],
      body: JoinBodySchema,
      response: SessionRecordSchema,
      handle: async ({ params, body }) => (await registry.join(params.id!, body.wait_ms)).record(),
    }),
  ]
}
