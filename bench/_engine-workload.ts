// Not a benchmark (run-all skips files starting with _).
import * as Y from 'yjs'
import { WebCryptoDeviceKey } from '@kai-sync/crypto'
import { createSession, type SyncEngine } from '@kai-sync/engine'

// What engine-throughput.ts measures and _profile-engine.ts profiles: one
// writer seals `n` envelopes, one message (about 500 B of text) each, and
// the wire-doc updates they made are kept, which is what a transport
// delivers to a reader.

export interface SealedWorkload {
  writer: SyncEngine
  /** The session's state before the first message (its genesis and keys). */
  setup: Uint8Array
  /** One wire-doc update per envelope, in order. */
  updates: Uint8Array[]
}

export async function sealedMessages(n: number): Promise<SealedWorkload> {
  const writer = await createSession({ device: await WebCryptoDeviceKey.generate(), mode: 'headless', agentId: 'a', userId: 'u', compactAfter: null })
  const setup = Y.encodeStateAsUpdate(writer.wire.doc)
  const updates: Uint8Array[] = []
  writer.wire.doc.on('update', (u: Uint8Array) => updates.push(u))
  for (let i = 0; i < n; i++) {
    writer.session.appendMessage({ id: `m${i}`, role: 'assistant', content: `${i} ${'lorem ipsum dolor sit amet '.repeat(18)}` })
    await writer.flush()
  }
  return { writer, setup, updates }
}
