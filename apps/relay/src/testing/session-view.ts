import { SessionKeyring, type DeviceKey, type SessionKey } from '@kai-sync/crypto'
import { SyncEngine, WireDoc } from '@kai-sync/engine'
import { connectRelay } from '@kai-sync/providers'
import { capability, eventually } from './clients'

/** Opens a session afresh from the relay alone (a new context of `device` with an empty wire doc) and returns its message ids. */
export async function messagesOnRelay(url: string, sessionId: string, device: DeviceKey, key: SessionKey, expected?: number): Promise<string[]> {
  const wire = new WireDoc()
  const engine = await SyncEngine.open({ sessionId, wire, device, keys: new SessionKeyring([key]), mode: 'tab', compactAfter: null })
  const relay = await connectRelay(wire, url, () => capability(device, sessionId))
  try {
    await relay.whenSynced()
    if (expected !== undefined) await eventually(() => engine.session.messageIds().length >= expected, 10_000, `${expected} messages`)
    await engine.whenIdle()
    return [...engine.session.messageIds()]
  } finally {
    relay.destroy()
    engine.destroy()
  }
}
