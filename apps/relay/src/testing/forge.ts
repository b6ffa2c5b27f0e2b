import * as Y from 'yjs'
import { ZERO_HASH, newStreamId, sealEnvelope, type DeviceKey, type SessionKey } from '@kai-sync/crypto'
import { WireDoc } from '@kai-sync/engine'

/** The Yjs update that `change` makes to a copy of `base`: what a client holding `base` would send. */
export function craftUpdate(base: Y.Doc, change: (wire: WireDoc) => void): Uint8Array {
  const copy = new Y.Doc()
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(base))
  const wire = new WireDoc(copy)
  let update: Uint8Array | null = null
  copy.on('update', (u: Uint8Array) => {
    update = update ? Y.mergeUpdates([update, u]) : u
  })
  change(wire)
  if (!update) throw new Error('the change made no update')
  return update
}

/** A validly sealed update envelope signed by `signer`, whatever its role. */
export async function sealedBy(signer: DeviceKey, sessionId: string, key: SessionKey, plaintext = new Uint8Array([0, 0])): Promise<Uint8Array> {
  const env = await sealEnvelope({
    header: { kind: 'update', sessionId, stream: newStreamId(), seq: 1, prev: ZERO_HASH, createdAt: Date.now(), clientIds: [], covers: [] },
    plaintext,
    key,
    signer,
  })
  return env.bytes
}
