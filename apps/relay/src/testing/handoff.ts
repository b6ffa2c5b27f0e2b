import { BoxKey, WebCryptoDeviceKey, type SignatureVerifier } from '@kai-sync/crypto'
import type { SyncEngine } from '@kai-sync/engine'
import { acceptHandoff, httpHandoffRelay, parseResumeLink, type AcceptedHandoff } from '@kai-sync/handoff'
import { connectRelay, type RelayConnection } from '@kai-sync/providers'
import { capability } from './clients'

/** A handoff target: a fresh device with its own engine and wire doc, connected to the relay its link names. */
export interface HandoffTarget extends AcceptedHandoff {
  device: WebCryptoDeviceKey
  connection: RelayConnection
  /** Every final close (44xx) the relay sent it. */
  closes: Array<{ code: number; reason: string }>
  close(): void
}

/** acceptHandoff through the relay's HTTP endpoints and a connectRelay connection, as an app does it. */
export async function acceptThroughRelay(
  link: string,
  options: { label?: string; verifier?: SignatureVerifier; now?: () => number; device?: WebCryptoDeviceKey; box?: BoxKey } = {},
): Promise<HandoffTarget> {
  const device = options.device ?? (await WebCryptoDeviceKey.generate())
  let connection: RelayConnection | undefined
  const closes: HandoffTarget['closes'] = []
  const accepted = await acceptHandoff(link, {
    device,
    box: options.box ?? (await BoxKey.generate()),
    mode: 'mobile',
    label: options.label ?? 'phone',
    relay: httpHandoffRelay(parseResumeLink(link).relayUrl),
    engine: { batchWindowMs: 5, compactAfter: null },
    ...(options.verifier ? { verifier: options.verifier } : {}),
    ...(options.now ? { now: options.now } : {}),
    connect: async (engine: SyncEngine, relayUrl: string) => {
      const c = await connectRelay(engine.wire, relayUrl, () => capability(device, engine.sessionId), engine)
      c.on('closed', (e) => closes.push(e))
      connection = c
      // A 44xx close is final: fail the accept instead of waiting for a sync that cannot come.
      const refused = new Promise<never>((_, reject) => c.on('closed', (e) => reject(new Error(`the relay closed the target's connection: ${e.code} ${e.reason}`))))
      try {
        await Promise.race([c.whenSynced(), refused])
      } catch (e) {
        c.destroy()
        throw e
      }
      return c
    },
  })
  return {
    ...accepted,
    device,
    connection: connection!,
    closes,
    close() {
      accepted.transport.destroy()
      accepted.engine.destroy()
    },
  }
}
