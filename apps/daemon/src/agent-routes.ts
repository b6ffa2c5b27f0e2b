import { ControlRequestSchema, KaiError, type ControlKind } from '@kai-sync/model'
import { EmptySchema } from './api-schemas'
import { jsonRoute, type AnyRoute } from './route'
import type { SessionRegistry } from './session-registry'

// Stop and retry: requests about a reply that any writer may make. Each is
// a record of its own, authored by this device (the reply is the agent's
// and only the agent ends it); the agent device holding the session acts
// on it wherever it runs.

const RETRYABLE = new Set(['stopped', 'interrupted', 'error'])

export function agentRoutes(registry: SessionRegistry): AnyRoute[] {
  const request = async (params: Record<string, string>, kind: ControlKind) => {
    const hosted = registry.get(params.id!)
    hosted.assertWritable()
    if (!hosted.ready) hosted.record() // throws `unavailable` with the reason
    const doc = hosted.engine.session
    const message = doc.message(params.message!)
    if (!message) throw new KaiError('not_found', `no message ${params.message!.slice(0, 60)} in this session`)
    if (kind === 'stop' && message.status !== 'streaming') throw new KaiError('conflict', `this reply is not streaming (it ended ${message.status}); nothing to stop`)
    if (kind === 'retry' && (message.role !== 'assistant' || !RETRYABLE.has(message.status))) {
      throw new KaiError('conflict', `only a reply that was stopped, interrupted or failed can be tried again (this one is ${message.role}, ${message.status})`)
    }
    const control = doc.requestControl(kind, message.id)
    await hosted.settle()
    return control
  }
  return REQUESTS.map(({ kind, operationId, summary, description }) =>
    jsonRoute({
      method: 'POST', path: `/session/:id/messages/:message/${kind}`, operationId, tag: 'agent', auth: true, status: 201,
      summary,
      description,
      errors: ['not_found', 'forbidden', 'conflict', 'unavailable'],
      body: EmptySchema,
      response: ControlRequestSchema,
      handle: ({ params }) => request(params, kind),
    }),
  )
}

const REQUESTS: { kind: ControlKind; operationId: string; summary: string; description: string }[] = [
  {
    kind: 'stop',
    operationId: 'stopReply',
    summary: 'Ask the agent to stop a reply that is streaming',
    description: 'Writes a stop request (kind `stop`, authored by this device) into the session; the agent device answering, on whatever device it runs, aborts its model request and ends the reply `stopped`, keeping its text so far. 409 `conflict` if the reply is not streaming.',
  },
  {
    kind: 'retry',
    operationId: 'retryReply',
    summary: 'Ask the agent to answer again in place of a stopped, interrupted or failed reply',
    description: 'Writes a retry request (kind `retry`) into the session; the agent device that wrote the reply answers again as a new reply whose `metadata.retry_of` names this one, from the history before it. The old reply stays as it ended. 409 `conflict` for any other message.',
  },
]
