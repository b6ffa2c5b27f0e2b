import type { IncomingMessage, ServerResponse } from 'node:http'
import type { z } from 'zod'
import type { NdjsonBody } from './ndjson'

// A route of the daemon's API: one declaration that the server dispatches
// and validates with, and the OpenAPI document is generated from.

export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'

export interface RequestContext<B> {
  params: Record<string, string>
  query: URLSearchParams
  /** The body parsed with the route's schema. */
  body: B
  /** The body as JSON, before the schema filled in defaults (what a /sync signature covers). */
  json: unknown
}

interface RouteBase {
  method: Method
  /** `/session/:id/sync`: `:name` segments become `params.name`. */
  path: string
  operationId: string
  tag: string
  summary: string
  description?: string
  /** False only for what holds nothing secret (health, the OpenAPI document). */
  auth: boolean
  /** Query parameters, for the document (the handler reads them from `query`). */
  query?: ReadonlyArray<{ name: string; description: string; type: 'string' | 'integer' }>
  /** The error codes this operation answers with beyond the ones every request can get. */
  errors?: readonly string[]
}

export interface JsonRoute<B extends z.core.$ZodType | undefined, R extends z.core.$ZodType> extends RouteBase {
  kind: 'json'
  body?: B
  response: R
  /** The status of a success (200 unless said). */
  status?: number
  handle(ctx: RequestContext<B extends z.core.$ZodType ? z.output<B> : undefined>): Promise<z.input<R>> | z.input<R>
  /** The same operation with an application/x-ndjson body: one `line`-shaped JSON value per line, read as it streams in. */
  ndjson?: NdjsonHandler<z.core.$ZodType, R>
}

export interface NdjsonHandler<L extends z.core.$ZodType, R extends z.core.$ZodType> {
  line: L
  description: string
  handle(ctx: RequestContext<undefined>, lines: NdjsonBody<z.output<L>>): Promise<z.input<R>>
}

/** Declares a route's NDJSON body, inferring its line type. */
export function ndjsonBody<L extends z.core.$ZodType, R extends z.core.$ZodType>(handler: NdjsonHandler<L, R>): NdjsonHandler<z.core.$ZodType, R> {
  return handler as unknown as NdjsonHandler<z.core.$ZodType, R>
}

export interface StreamRoute extends RouteBase {
  kind: 'sse'
  /** The schemas of the events, by event name, for the document. */
  events: Record<string, z.core.$ZodType>
  /** Throws before writing anything if the request is refused; else owns the response. */
  open(ctx: RequestContext<undefined>, req: IncomingMessage, res: ServerResponse): void
}

export type AnyRoute = JsonRoute<z.core.$ZodType | undefined, z.core.$ZodType> | StreamRoute

/** Declares a JSON route, inferring its body and response types. */
export function jsonRoute<B extends z.core.$ZodType | undefined, R extends z.core.$ZodType>(route: Omit<JsonRoute<B, R>, 'kind'>): AnyRoute {
  return { kind: 'json', ...route } as unknown as AnyRoute
}

export function streamRoute(route: Omit<StreamRoute, 'kind'>): AnyRoute {
  return { kind: 'sse', ...route }
}

/** Matches a request path against a route path; returns its params or null. */
export function matchPath(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split('/')
  const got = path.split('/')
  if (want.length !== got.length) return null
  const params: Record<string, string> = {}
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!
    const g = got[i]!
    if (w.startsWith(':')) {
      if (g.length === 0) return null
      try {
        params[w.slice(1)] = decodeURIComponent(g)
      } catch {
        return null
      }
    } else if (w !== g) return null
  }
  return params
}
