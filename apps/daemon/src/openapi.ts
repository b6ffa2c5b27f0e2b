import { z } from 'zod'
import {
  AgentConfigSchema,
  AuditEntrySchema,
  HTTP_STATUS,
  JsonSchema,
  MemorySnapshotSchema,
  MessageSchema,
  VolatileStateSchema,
  type ErrorCode,
} from '@kai-sync/model'
import { ConflictInfoSchema, HandoffIntentSchema, SessionRecordSchema } from '@kai-sync/model/exchange-schemas'
import { HandoffResponseSchema, SessionDeltaSchema } from '@kai-sync/model/rest-schemas'
import { ErrorBodySchema } from './api-schemas'
import type { AnyRoute } from './route'
import { NDJSON_TYPE } from './ndjson'

// The OpenAPI 3.1 document of the daemon's API, generated from the same
// route table and zod schemas the server validates with, so the two cannot
// drift. Shared shapes become components; each is emitted twice, as sent
// (`<Name>Input`: defaults optional) and as answered (`<Name>`).

const NAMED: Record<string, z.core.$ZodType> = {
  Json: JsonSchema,
  Message: MessageSchema,
  AgentConfig: AgentConfigSchema,
  AuditEntry: AuditEntrySchema,
  MemorySnapshot: MemorySnapshotSchema,
  VolatileState: VolatileStateSchema,
  ConflictInfo: ConflictInfoSchema,
  SessionRecord: SessionRecordSchema,
  SessionDelta: SessionDeltaSchema,
  HandoffIntent: HandoffIntentSchema,
  HandoffResponse: HandoffResponseSchema,
  Error: ErrorBodySchema,
}

/** Every request can be refused with these, whatever the operation. */
const COMMON_ERRORS: ErrorCode[] = ['invalid_input', 'malformed', 'too_large', 'internal']

export function openApiDocument(routes: AnyRoute[], info: { version: string; serverUrl?: string }): Record<string, unknown> {
  const registry = z.registry<{ id: string }>()
  for (const [id, schema] of Object.entries(NAMED)) registry.add(schema, { id })
  const bodies = new Map<z.core.$ZodType, string>()
  const name = (schema: z.core.$ZodType, fallback: string) => {
    const known = registry.get(schema)?.id
    if (known) return known
    let id = bodies.get(schema)
    if (!id) {
      id = fallback
      bodies.set(schema, id)
      registry.add(schema, { id })
    }
    return id
  }

  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    const path = route.path.replace(/:([A-Za-z]+)/g, '{$1}')
    const parameters: Array<Record<string, unknown>> = [...route.path.matchAll(/:([A-Za-z]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }))
    for (const q of route.query ?? []) parameters.push({ name: q.name, in: 'query', required: false, description: q.description, schema: { type: q.type } })
    const op: Record<string, unknown> = {
      operationId: route.operationId,
      tags: [route.tag],
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(route.auth ? {} : { security: [] }),
    }
    const responses: Record<string, unknown> = {}
    if (route.kind === 'json') {
      if (route.body) {
        const content: Record<string, unknown> = { 'application/json': { schema: ref(`${name(route.body, `${cap(route.operationId)}Body`)}Input`) } }
        if (route.ndjson) {
          // OpenAPI 3.2's itemSchema: the schema of each line of the stream.
          content[NDJSON_TYPE] = { schema: { type: 'string', description: route.ndjson.description }, itemSchema: ref(`${name(route.ndjson.line, `${cap(route.operationId)}Line`)}Input`) }
        }
        op.requestBody = { required: true, content }
      }
      responses[String(route.status ?? 200)] = {
        description: 'Success',
        content: { 'application/json': { schema: ref(name(route.response, `${cap(route.operationId)}Response`)) } },
      }
    } else {
      const events = Object.entries(route.events).map(([event, schema]) => ({ event, data: ref(name(schema, `${cap(event)}Event`)) }))
      responses['200'] = {
        description: `text/event-stream; events: ${events.map((e) => e.event).join(', ')}; each event's data is JSON, described by x-events`,
        content: { 'text/event-stream': { schema: { type: 'string' } } },
      }
      op['x-events'] = events
    }
    const codes = new Set<ErrorCode>([...COMMON_ERRORS, ...(route.auth ? (['unauthenticated'] as const) : []), ...((route.errors ?? []) as ErrorCode[])])
    for (const [status, list] of groupByStatus(codes)) {
      responses[String(status)] = { description: list.join(', '), content: { 'application/json': { schema: ref('Error') } } }
    }
    op.responses = responses
    ;(paths[path] ??= {})[route.method.toLowerCase()] = op
  }

  const uri = (suffix: string) => (id: string) => `#/components/schemas/${id}${suffix}`
  const output = z.toJSONSchema(registry, { io: 'output', uri: uri(''), unrepresentable: 'any' }).schemas
  const input = z.toJSONSchema(registry, { io: 'input', uri: uri('Input'), unrepresentable: 'any' }).schemas
  const schemas: Record<string, unknown> = {}
  for (const [id, schema] of Object.entries(output)) schemas[id] = strip(schema)
  for (const [id, schema] of Object.entries(input)) schemas[`${id}Input`] = strip(schema)

  return {
    openapi: '3.1.0',
    info: {
      title: 'kai daemon',
      version: info.version,
      description: 'The headless kai-sync device: the seed\'s session API, on loopback, behind the bearer token in the data directory\'s `token` file. Errors are `{ error: { code, message } }` with a stable code.',
    },
    ...(info.serverUrl ? { servers: [{ url: info.serverUrl }] } : {}),
    security: [{ bearer: [] }],
    paths,
    components: { schemas, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
  }
}

function ref(id: string): { $ref: string } {
  return { $ref: `#/components/schemas/${id}` }
}

function cap(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1)
}

function groupByStatus(codes: Iterable<ErrorCode>): Map<number, ErrorCode[]> {
  const out = new Map<number, ErrorCode[]>()
  for (const code of codes) {
    const status = HTTP_STATUS[code]
    out.set(status, [...(out.get(status) ?? []), code])
  }
  return new Map([...out].sort(([a], [b]) => a - b))
}

/** A component is embedded in the document: its own `$schema` and `id` keys do not belong there. */
function strip(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _s, id: _id, ...rest } = schema
  return rest
}
