import { rmSync } from 'node:fs'
import { toBase64Url } from '@kai-sync/crypto'
import { KaiError } from '@kai-sync/model'
import { LevelUpdateStore } from '@kai-sync/storage'
import { DataDir, writePrivateFile } from './data-dir'
import { loadOrCreateDeviceKeys } from './key-files'
import { loadOrCreateToken } from './token'
import { ClientKeys } from './client-keys'
import { SessionRegistry } from './session-registry'
import { sessionRoutes } from './session-routes'
import { adminRoutes } from './admin-routes'
import { openApiDocument } from './openapi'
import { startApiServer, type ApiServer } from './server'
import { createLogger, type Logger } from './log'
import type { AnyRoute } from './route'
import { AgentDevice, type AgentOptions } from './agent/agent-device'
import { agentRoutes } from './agent-routes'

// The daemon: a device of its own. It composes the parts, nothing more:
// the data directory (keys, token), the embedded store, the sessions, the
// relay links and the API server on 127.0.0.1.

export const DAEMON_VERSION = '0.1.0'
/** Only loopback: the API is for programs on this machine. */
const HOST = '127.0.0.1'

export interface DaemonOptions {
  dataDir: string
  /** 0 picks a free port; `<data>/daemon.json` says which. */
  port: number
  /** The relay sessions sync through (ws:// or wss://); none: this device only. */
  relayUrl?: string
  /** Where handoff links point: the web app's resume page. */
  appUrl: string
  /** How this device shows in rosters. */
  label: string
  bodyLimit?: number
  /** Compact a session's log once it holds this many envelopes (the engine's default otherwise). */
  compactAfter?: number
  log?: Logger
  /** Runs the agent device beside the API: it answers user messages in every session held here. */
  agent?: AgentOptions
}

export interface RunningDaemon {
  url: string
  port: number
  dataDir: DataDir
  device: string
  /** True when this start generated the token (first start). */
  tokenCreated: boolean
  keysCreated: boolean
  close(): Promise<void>
}

/** The contents of `<data>/daemon.json`: how the CLI finds a running daemon. */
export interface RuntimeFile {
  url: string
  pid: number
}

export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const log = options.log ?? createLogger()
  if (options.relayUrl !== undefined && !/^wss?:\/\/[^/?#]+/.test(options.relayUrl)) {
    throw new KaiError('invalid_input', `--relay must be a ws:// or wss:// address (got ${options.relayUrl.slice(0, 60)})`)
  }
  const dir = new DataDir(options.dataDir)
  dir.prepare()
  const keys = await loadOrCreateDeviceKeys(dir)
  const { token, created: tokenCreated } = loadOrCreateToken(dir)
  const store = await LevelUpdateStore.open(dir.storeDir)
  const clients = new ClientKeys(dir)
  const agent = options.agent ? new AgentDevice(options.agent, log) : undefined
  const registry = new SessionRegistry({
    dir,
    store,
    device: keys.device,
    box: keys.box,
    label: options.label,
    appUrl: options.appUrl,
    ...(options.compactAfter ? { compactAfter: options.compactAfter } : {}),
    log,
    ...(options.relayUrl ? { relayUrl: options.relayUrl } : {}),
    ...(agent ? { onHosted: (hosted) => agent.attach(hosted) } : {}),
  })
  let server: ApiServer | undefined
  try {
    await registry.openAll()
    const identity = { device: toBase64Url(keys.device.publicKey), box: toBase64Url(keys.box.publicKey), label: options.label, mode: 'headless' as const }
    let document: Record<string, unknown> | undefined
    const routes: AnyRoute[] = [
      ...sessionRoutes(registry, clients),
      ...agentRoutes(registry),
      ...adminRoutes({ registry, clients, identity, relayUrl: options.relayUrl, openapi: () => (document ??= openApiDocument(routes, { version: DAEMON_VERSION, ...(server ? { serverUrl: server.url } : {}) })) }),
    ]
    server = await startApiServer({ host: HOST, port: options.port, routes, token, log, ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}) })
    const runtime: RuntimeFile = { url: server.url, pid: process.pid }
    writePrivateFile(dir.runtimeFile, JSON.stringify(runtime) + '\n')
    log.info('listening', { url: server.url, port: server.port, device: identity.device, sessions: registry.list().length, relay: options.relayUrl ?? null, agent: options.agent ? options.agent.model ?? 'from session config' : null })
    const running = server
    let closing: Promise<void> | undefined
    return {
      url: server.url,
      port: server.port,
      dataDir: dir,
      device: identity.device,
      tokenCreated,
      keysCreated: keys.created,
      close: () =>
        (closing ??= (async () => {
          await running.close()
          await registry.closeAll()
          await store.close()
          rmSync(dir.runtimeFile, { force: true })
          log.info('stopped', {})
        })()),
    }
  } catch (e) {
    await server?.close()
    await registry.closeAll()
    await store.close()
    throw e
  }
}
