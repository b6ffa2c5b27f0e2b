import * as Y from 'yjs'
import { afterEach, describe, expect, it } from 'vitest'
import { SessionDoc, type ErrorCode } from '@kai-sync/model'
import {
  SessionKey,
  SessionKeyring,
  WebCryptoDeviceKey,
  ZERO_HASH,
  deriveClientId,
  newStreamId,
  sealEnvelope,
  type DeviceKey,
  type Envelope,
  type EnvelopeHeader,
} from '@kai-sync/crypto'
import { WireDoc } from './wire-doc'
import { SyncEngine, deviceIdOf, type Rejection } from './sync-engine'
import { createSession } from './session'
import { transportOrigin } from './origins'

// Every way an envelope can be refused, each from a crafted envelope put
// into a receiver's wire doc as a transport would. A refused envelope must
// leave the session doc exactly as it was.

const engines: SyncEngine[] = []
afterEach(() => {
  for (const e of engines.splice(0)) e.destroy()
})

const ARRIVAL = transportOrigin('test')

interface World {
  owner: SyncEngine
  writer: DeviceKey
  reader: DeviceKey
  outsider: DeviceKey
  key: SessionKey
  receiver: SyncEngine
  rejections: Rejection[]
}

async function world(): Promise<World> {
  const owner = await createSession({ device: await WebCryptoDeviceKey.generate(), mode: 'desktop', agentId: 'a', userId: 'u', compactAfter: null })
  const writer = await WebCryptoDeviceKey.generate()
  const reader = await WebCryptoDeviceKey.generate()
  const outsider = await WebCryptoDeviceKey.generate()
  await owner.setRole(writer.publicKey, 'writer')
  await owner.setRole(reader.publicKey, 'reader')
  await owner.flush()
  const key = owner.keys.current
  // The receiver: another device's context holding the same wire state.
  const wire = new WireDoc()
  Y.applyUpdate(wire.doc, Y.encodeStateAsUpdate(owner.wire.doc))
  const receiver = await SyncEngine.open({ sessionId: owner.sessionId, wire, device: writer, keys: new SessionKeyring([key]), mode: 'tab', compactAfter: null })
  const rejections: Rejection[] = []
  receiver.on('rejected', (r) => rejections.push(r))
  engines.push(owner, receiver)
  return { owner, writer, reader, outsider, key, receiver, rejections }
}

/** A Yjs update that appends one message by `author` (a device id), written as `clientId`. */
function messageUpdate(clientId: number, id = 'forged', author = 'forger'): Uint8Array {
  const doc = new Y.Doc()
  doc.clientID = clientId
  new SessionDoc({ device: author, mode: 'tab', doc }).appendMessage({ id, role: 'user', content: `message ${id}`, timestamp: 1 })
  return Y.encodeStateAsUpdate(doc)
}

interface Craft {
  signer: DeviceKey
  key: SessionKey
  stream?: Uint8Array
  header?: Partial<Omit<EnvelopeHeader, 'device' | 'epoch'>>
  plaintext?: Uint8Array
}

async function craft(w: World, c: Craft): Promise<Envelope> {
  const stream = c.stream ?? newStreamId()
  const clientId = deriveClientId(c.signer.publicKey, stream)
  return sealEnvelope({
    header: {
      kind: 'update',
      sessionId: w.owner.sessionId,
      stream,
      seq: 1,
      prev: ZERO_HASH,
      createdAt: 1,
      clientIds: [clientId],
      covers: [],
      ...c.header,
    },
    plaintext: c.plaintext ?? messageUpdate(clientId, 'forged', deviceIdOf(c.signer)),
    key: c.key,
    signer: c.signer,
  })
}

/** Puts raw bytes into the receiver's log and returns the codes it reported. */
async function deliver(w: World, ...envelopes: Uint8Array[]): Promise<Array<[ErrorCode, boolean]>> {
  const before = Y.encodeStateAsUpdate(w.receiver.session.doc)
  const from = w.rejections.length
  for (const bytes of envelopes) w.receiver.wire.doc.transact(() => w.receiver.wire.log.push([bytes]), ARRIVAL)
  await w.receiver.whenIdle()
  const codes = w.rejections.slice(from).map((r): [ErrorCode, boolean] => [r.code, r.held])
  if (codes.length > 0) expect(Y.encodeStateAsUpdate(w.receiver.session.doc)).toEqual(before)
  return codes
}

describe('envelope rejections', () => {
  it('accepts a well-formed envelope from a writer (the baseline every case below breaks)', async () => {
    const w = await world()
    const env = await craft(w, { signer: w.writer, key: w.key })
    expect(await deliver(w, env.bytes)).toEqual([])
    expect(w.receiver.session.message('forged')?.content).toBe('message forged')
  })

  it('malformed: bytes that are not an envelope', async () => {
    const w = await world()
    expect(await deliver(w, new Uint8Array([1, 2, 3, 4, 5]))).toEqual([['malformed', false]])
  })

  it('bad_signature: a flipped bit in the signature', async () => {
    const w = await world()
    const bytes = (await craft(w, { signer: w.writer, key: w.key })).bytes.slice()
    bytes[bytes.length - 1]! ^= 1
    expect(await deliver(w, bytes)).toEqual([['bad_signature', false]])
  })

  it('unknown_signer: a device not in the roster is held, never applied', async () => {
    const w = await world()
    expect(await deliver(w, (await craft(w, { signer: w.outsider, key: w.key })).bytes)).toEqual([['unknown_signer', true]])
    expect(w.receiver.status.held).toBe(1)
  })

  it('unauthorized_signer: a reader may not write', async () => {
    const w = await world()
    expect(await deliver(w, (await craft(w, { signer: w.reader, key: w.key })).bytes)).toEqual([['unauthorized_signer', false]])
  })

  it('unauthorized_signer: a reader may not sign a snapshot, not even at seq 0 of its own stream', async () => {
    const w = await world()
    const snapshot = await craft(w, { signer: w.reader, key: w.key, header: { kind: 'snapshot', seq: 0 } })
    expect(await deliver(w, snapshot.bytes)).toEqual([['unauthorized_signer', false]])
    expect(w.receiver.session.messageCount).toBe(0)
  })

  it('wrong_session: signed for another session', async () => {
    const w = await world()
    const env = await craft(w, { signer: w.writer, key: w.key, header: { sessionId: 'another-session' } })
    expect(await deliver(w, env.bytes)).toEqual([['wrong_session', false]])
  })

  it('wrong_epoch: sealed under an epoch this device has no key for, held', async () => {
    const w = await world()
    const env = await craft(w, { signer: w.writer, key: await SessionKey.generate(7) })
    expect(await deliver(w, env.bytes)).toEqual([['wrong_epoch', true]])
  })

  it('decrypt_failed: validly signed, but sealed under another key of the same epoch', async () => {
    const w = await world()
    const env = await craft(w, { signer: w.writer, key: await SessionKey.generate(0) })
    expect(await deliver(w, env.bytes)).toEqual([['decrypt_failed', false]])
  })

  it('replay: the same envelope inserted into the log a second time', async () => {
    const w = await world()
    const env = await craft(w, { signer: w.writer, key: w.key })
    expect(await deliver(w, env.bytes)).toEqual([])
    expect(await deliver(w, env.bytes)).toEqual([['replay', false]])
    expect(w.receiver.session.messageCount).toBe(1)
  })

  it('gap: seq 3 before 1 and 2 is held; it applies once they arrive', async () => {
    const w = await world()
    const stream = newStreamId()
    const client = deriveClientId(w.writer.publicKey, stream)
    const e1 = await craft(w, { signer: w.writer, key: w.key, stream, plaintext: messageUpdate(client, 'a', deviceIdOf(w.writer)) })
    const doc = new Y.Doc()
    Y.applyUpdate(doc, messageUpdate(client, 'a', deviceIdOf(w.writer)))
    // Continue writing as the stream's client (Yjs would otherwise move on).
    doc.clientID = client
    const sv1 = Y.encodeStateVector(doc)
    new SessionDoc({ device: deviceIdOf(w.writer), mode: 'tab', doc }).appendMessage({ id: 'b', role: 'user', content: 'b', timestamp: 2 })
    const e2 = await craft(w, { signer: w.writer, key: w.key, stream, header: { seq: 2, prev: e1.hash }, plaintext: Y.encodeStateAsUpdate(doc, sv1) })
    const sv2 = Y.encodeStateVector(doc)
    new SessionDoc({ device: deviceIdOf(w.writer), mode: 'tab', doc }).appendMessage({ id: 'c', role: 'user', content: 'c', timestamp: 3 })
    const e3 = await craft(w, { signer: w.writer, key: w.key, stream, header: { seq: 3, prev: e2.hash }, plaintext: Y.encodeStateAsUpdate(doc, sv2) })
    expect(await deliver(w, e3.bytes)).toEqual([['gap', true]])
    expect(await deliver(w, e1.bytes, e2.bytes)).toEqual([])
    expect(w.receiver.session.messageIds()).toEqual(['a', 'b', 'c'])
    expect(w.receiver.status.held).toBe(0)
  })

  it('fork: an envelope that does not chain onto its predecessor', async () => {
    const w = await world()
    const stream = newStreamId()
    const client = deriveClientId(w.writer.publicKey, stream)
    const first = await craft(w, { signer: w.writer, key: w.key, stream, plaintext: messageUpdate(client, 'one', deviceIdOf(w.writer)) })
    expect(await deliver(w, first.bytes)).toEqual([])
    const unchained = await craft(w, { signer: w.writer, key: w.key, stream, header: { seq: 2, prev: new Uint8Array(32).fill(7) }, plaintext: messageUpdate(client, 'three', deviceIdOf(w.writer)) })
    expect(await deliver(w, unchained.bytes)).toEqual([['fork', false]])
    expect(w.receiver.session.messageIds()).toEqual(['one'])
  })

  it('equivocation: a second, different envelope its device signed at a position freezes the stream there', async () => {
    const w = await world()
    const stream = newStreamId()
    const client = deriveClientId(w.writer.publicKey, stream)
    const first = await craft(w, { signer: w.writer, key: w.key, stream, plaintext: messageUpdate(client, 'one', deviceIdOf(w.writer)) })
    const rival = await craft(w, { signer: w.writer, key: w.key, stream, plaintext: messageUpdate(client, 'two', deviceIdOf(w.writer)) })
    expect(await deliver(w, first.bytes)).toEqual([])
    expect(await deliver(w, rival.bytes)).toEqual([['equivocation', false]])
    const next = await craft(w, { signer: w.writer, key: w.key, stream, header: { seq: 2, prev: first.hash }, plaintext: messageUpdate(client, 'three', deviceIdOf(w.writer)) })
    expect(await deliver(w, next.bytes)).toEqual([['equivocation', false]])
    expect(w.receiver.session.messageIds()).toEqual(['one'])
  })

  it('client_id_not_owned: an update written as a Yjs client the signer does not own', async () => {
    const w = await world()
    const stolen = messageUpdate(123456)
    expect(await deliver(w, (await craft(w, { signer: w.writer, key: w.key, plaintext: stolen })).bytes)).toEqual([['client_id_not_owned', false]])
    const claims = await craft(w, { signer: w.writer, key: w.key, plaintext: stolen, header: { clientIds: [123456] } })
    expect(await deliver(w, claims.bytes)).toEqual([['client_id_not_owned', false]])
  })

  it('client_id_not_owned: an update that writes as its own client and another one', async () => {
    const w = await world()
    const stream = newStreamId()
    const both = Y.mergeUpdates([messageUpdate(deriveClientId(w.writer.publicKey, stream), 'mine', deviceIdOf(w.writer)), messageUpdate(123456, 'theirs')])
    expect(await deliver(w, (await craft(w, { signer: w.writer, key: w.key, stream, plaintext: both })).bytes)).toEqual([['client_id_not_owned', false]])
  })

  it('malformed: a valid Yjs update header over garbage structs', async () => {
    const w = await world()
    const stream = newStreamId()
    const client = deriveClientId(w.writer.publicKey, stream)
    // One client, one struct, then bytes Yjs cannot read.
    const header = [1, 1, ...varUint(client), 0]
    const env = await craft(w, { signer: w.writer, key: w.key, stream, plaintext: new Uint8Array([...header, 255, 255, 255, 255]) })
    expect(await deliver(w, env.bytes)).toEqual([['malformed', false]])
  })

  it('malformed: a validly sealed envelope whose plaintext is not a Yjs update', async () => {
    const w = await world()
    const env = await craft(w, { signer: w.writer, key: w.key, plaintext: new Uint8Array([255, 255, 255]) })
    expect(await deliver(w, env.bytes)).toEqual([['malformed', false]])
  })
})

function varUint(n: number): number[] {
  const out: number[] = []
  while (n > 127) {
    out.push((n & 127) | 128)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return out
}
