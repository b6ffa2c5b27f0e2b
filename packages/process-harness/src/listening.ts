import type { ChildHandle } from './child'

/** What a kai-sync server (relay or daemon) logs once it accepts connections. */
export interface Listening {
  port: number
  url?: string
}

/**
 * Waits for a server's structured `{"msg":"listening","port":N,…}` log line.
 * Servers started with `--port 0` let the OS pick, so this is how a caller
 * learns the port.
 */
export async function waitForListening(child: ChildHandle, timeoutMs = 30_000, what = 'the server to listen'): Promise<Listening> {
  const line = await child.waitFor((l) => listeningIn(l) !== undefined, timeoutMs, what)
  return listeningIn(line)!
}

function listeningIn(line: string): Listening | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const entry = JSON.parse(line) as { msg?: unknown; port?: unknown; url?: unknown }
    if (entry.msg !== 'listening' || typeof entry.port !== 'number' || entry.port <= 0) return undefined
    return typeof entry.url === 'string' ? { port: entry.port, url: entry.url } : { port: entry.port }
  } catch {
    return undefined
  }
}
