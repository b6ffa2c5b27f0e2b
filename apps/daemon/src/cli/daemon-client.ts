import { readFileSync } from 'node:fs'
import { KaiError } from '@kai-sync/model'
import { DataDir } from '../data-dir'

// A small REST client of the daemon, for the CLI (and TypeScript programs).
// It finds the daemon and its token in the data directory, unless told.

export interface DaemonClientOptions {
  /** http://127.0.0.1:port; read from `<data>/daemon.json` when omitted. */
  url?: string
  token?: string
  dataDir: string
}

export interface SseEvent {
  event: string
  data: unknown
}

export class DaemonClient {
  readonly url: string
  private readonly token: string

  constructor(options: DaemonClientOptions) {
    const dir = new DataDir(options.dataDir)
    this.url = (options.url ?? readRuntimeUrl(dir)).replace(/\/+$/, '')
    this.token = options.token ?? readToken(dir)
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path)
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body)
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body)
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path)
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.fetch(path, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    const json = (await response.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null
    if (!response.ok) throw errorFrom(response.status, json)
    return json as T
  }

  /** Follows an event stream until `signal` aborts; calls `onEvent` for each event. */
  async events(path: string, onEvent: (event: SseEvent) => void, signal?: AbortSignal): Promise<void> {
    const response = await this.fetch(path, { headers: { authorization: `Bearer ${this.token}`, accept: 'text/event-stream' }, ...(signal ? { signal } : {}) })
    if (!response.ok || !response.body) throw errorFrom(response.status, await response.json().catch(() => null))
    const decoder = new TextDecoder()
    let buffer = ''
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true })
        let end
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const event = parseSseBlock(block)
          if (event) onEvent(event)
        }
      }
    } catch (e) {
      if (signal?.aborted) return
      throw e
    }
    if (!signal?.aborted) throw new KaiError('unavailable', 'the daemon closed the event stream (stopped?)')
  }

  private async fetch(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(`${this.url}${path}`, init)
    } catch (cause) {
      if ((init.signal as AbortSignal | undefined)?.aborted) throw cause
      throw new KaiError('unavailable', `no daemon answers at ${this.url}; start one with: pnpm kai daemon`, { cause })
    }
  }
}

function parseSseBlock(block: string): SseEvent | null {
  let event = 'message'
  const data: string[] = []
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue
    if (line.startsWith('event:')) event = line.slice(6).trim()
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
  }
  if (data.length === 0) return null
  return { event, data: JSON.parse(data.join('\n')) }
}

function errorFrom(status: number, json: unknown): KaiError {
  const error = typeof json === 'object' && json !== null && 'error' in json ? (json.error as { code?: string; message?: string } | undefined) : undefined
  return KaiError.fromJSON(error, `the daemon answered ${status}`)
}

function readRuntimeUrl(dir: DataDir): string {
  try {
    const { url } = JSON.parse(readFileSync(dir.runtimeFile, 'utf8')) as { url?: unknown }
    if (typeof url === 'string') return url
  } catch {
    // fall through
  }
  throw new KaiError('unavailable', `no daemon is running for ${dir.root} (no daemon.json); start one with: pnpm kai daemon`)
}

function readToken(dir: DataDir): string {
  try {
    return readFileSync(dir.tokenFile, 'utf8').trim()
  } catch {
    throw new KaiError('unauthenticated', `no token in ${dir.root}; start the daemon once to create it, or pass --token`)
  }
}
