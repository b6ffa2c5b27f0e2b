import { KaiError, type Mode, type TransferType, type VolatileState } from '@kai-sync/model'
import { acceptHandoff, httpHandoffRelay, initiateHandoff, parseResumeLink, type InitiatedHandoff } from '@kai-sync/handoff'
import { connectRelay, type RelayConnection as ProviderConnection } from '@kai-sync/providers'
import type { BrowserDevice, BrowserSession } from './browser-session'
import { capabilitySource } from './relay-link'
import { WirePersistence } from './wire-persistence'

/** How long the target waits for the relay's first sync and acknowledgement. */
const RELAY_WAIT_MS = 15_000

export type { InitiatedHandoff }

export interface BrowserHandoffOptions {
  transfer: TransferType
  targetMode: Mode
  /** The page the link opens: the PWA's address. */
  appUrl: string
  /** The relay both devices reach the session through. */
  relayUrl: string
  label: string
}

/**
 * The seed's initiateHandoff from a browser context. The link carries no
 * key: once the target enrolls, the engine grants it the keys (through the
 * key store's one export path, its own keys being non-extractable). The
 * link is handed out only once the relay holds the invite, so the target
 * is never refused for being early.
 */
export async function handOffFromBrowser(session: BrowserSession, options: BrowserHandoffOptions): Promise<InitiatedHandoff> {
  if (!session.relay) throw new KaiError('unavailable', 'a handoff goes through the relay: set its address first')
  const { engine, sessionId } = session
  const started = await initiateHandoff(
    engine,
    { session_id: sessionId, source_mode: session.mode, target_mode: options.targetMode, transfer_type: options.transfer },
    {
      appUrl: options.appUrl,
      relayUrl: options.relayUrl,
      relay: httpHandoffRelay(options.relayUrl),
      volatile: session.presence.state.volatile,
      label: options.label,
    },
  )
  await engine.whenIdle()
  await within(session.relay.whenAcknowledged(), 'the relay has not confirmed the handoff invite')
  return started
}

export interface AcceptedInBrowser {
  sessionId: string
  transfer: TransferType
  /** The relay the link named: the session syncs through it. */
  relayUrl: string
  /** The source's volatile state (draft, scratchpad, a reply mid-stream), to continue from. */
  volatile: VolatileState | null
}

/**
 * The relay a resume link names, read without contacting anything: the
 * app asks the person before it opens a link through a relay this device
 * has not used. `malformed` or `unsupported_version` for a bad link.
 */
export function resumeLinkRelay(link: string): string {
  return parseResumeLink(link).relayUrl
}

/**
 * The seed's acceptHandoff in a browser: accepts the link, stores the
 * session's keys, granted once it enrolled (wrapped, so this device can
 * hand it on), and its wire doc
 * in this origin's IndexedDB, and lists it. The caller then opens it as any
 * other session. The link's secrets are used here and not kept.
 */
export async function acceptHandoffInBrowser(device: BrowserDevice, link: string, options: { mode: Mode; label: string }): Promise<AcceptedInBrowser> {
  const { relayUrl } = parseResumeLink(link)
  const accepted = await acceptHandoff(link, {
    device: device.key,
    box: device.box,
    mode: options.mode,
    label: options.label,
    relay: httpHandoffRelay(relayUrl),
    connect: async (engine, url) => {
      const connection = await connectRelay(engine.wire, url, capabilitySource(engine.sessionId, device.key), engine, { name: `relay ${url}` })
      try {
        await within(connection.whenSynced(), `the relay at ${url} did not send the session`)
      } catch (e) {
        connection.destroy()
        throw e
      }
      return connection
    },
  })
  const { engine } = accepted
  const connection = accepted.transport as ProviderConnection
  try {
    const sessionId = engine.sessionId
    for (const epoch of engine.keys.epochs()) await device.keys.save(sessionId, engine.keys.get(epoch)!)
    // This device's roster entry must be at the relay before it connects as itself.
    await within(connection.whenAcknowledged(), 'the relay has not confirmed this device joining')
    const persistence = await WirePersistence.open(engine.wire, sessionId)
    await persistence.destroy()
    await device.catalog.touch(sessionId, { createdAt: engine.session.metaOrNull()?.created_at ?? Date.now() })
    return { sessionId, transfer: accepted.transfer, relayUrl, volatile: accepted.volatile }
  } finally {
    connection.destroy()
    engine.destroy()
  }
}

function within<T>(p: Promise<T>, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new KaiError('unavailable', `${what} within ${RELAY_WAIT_MS / 1000} s; check that it is running and reachable`)), RELAY_WAIT_MS)
    p.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (e: unknown) => {
        clearTimeout(timer)
        reject(e)
      },
    )
  })
}
