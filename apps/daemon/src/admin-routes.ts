import { z } from 'zod'
import { ClientKeySchema, type ClientKeys } from './client-keys'
import { ClientListSchema, DeviceIdentitySchema, EmptySchema, HealthSchema, RegisterClientBodySchema } from './api-schemas'
import { jsonRoute, type AnyRoute } from './route'
import type { SessionRegistry } from './session-registry'

// The routes about the daemon itself: health, the OpenAPI document, this
// device's public identity, and the client keys allowed to sign /sync.

export interface AdminRouteOptions {
  registry: SessionRegistry
  clients: ClientKeys
  identity: z.input<typeof DeviceIdentitySchema>
  relayUrl: string | undefined
  /** The OpenAPI document, built once from every route. */
  openapi: () => Record<string, unknown>
}

export function adminRoutes(options: AdminRouteOptions): AnyRoute[] {
  const { registry, clients, identity } = options
  return [
    jsonRoute({
      method: 'GET', path: '/health', operationId: 'health', tag: 'daemon', auth: false,
      summary: 'Whether the daemon is up, and which device it is',
      response: HealthSchema,
      handle: () => {
        const statuses = registry.list().map((s) => s.syncStatus())
        const sum = (f: (s: (typeof statuses)[number]) => number) => statuses.reduce((n, s) => n + f(s), 0)
        return {
          ok: true as const,
          device: identity.device,
          sessions: statuses.length,
          relay: options.relayUrl ?? null,
          unsynced: sum((s) => Number(s.state !== 'synced')),
          held: sum((s) => s.held),
          refused: sum((s) => s.refused),
        }
      },
    }),
    jsonRoute({
      method: 'GET', path: '/openapi.json', operationId: 'openapi', tag: 'daemon', auth: false,
      summary: 'This document',
      response: z.record(z.string(), z.unknown()),
      handle: () => options.openapi(),
    }),
    jsonRoute({
      method: 'GET', path: '/device', operationId: 'getDevice', tag: 'devices', auth: true,
      summary: 'This device\'s public keys, to enroll it in a session elsewhere',
      response: DeviceIdentitySchema,
      handle: () => identity,
    }),
    jsonRoute({
      method: 'GET', path: '/clients', operationId: 'listClients', tag: 'clients', auth: true,
      summary: 'The client keys allowed to sign deltas for /sync',
      response: ClientListSchema,
      handle: () => ({ clients: clients.list() }),
    }),
    jsonRoute({
      method: 'POST', path: '/clients', operationId: 'registerClient', tag: 'clients', auth: true, status: 201,
      summary: 'Allow a client\'s Ed25519 key to sign deltas for /sync',
      body: RegisterClientBodySchema,
      response: ClientKeySchema,
      handle: ({ body }) => clients.add(body.public_key, body.label),
    }),
    jsonRoute({
      method: 'DELETE', path: '/clients/:key', operationId: 'removeClient', tag: 'clients', auth: true,
      summary: 'Stop accepting a client key',
      errors: ['not_found'],
      response: EmptySchema,
      handle: ({ params }) => {
        clients.remove(params.key!)
        return {}
      },
    }),
  ]
}
