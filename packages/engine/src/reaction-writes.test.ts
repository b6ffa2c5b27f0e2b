import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { SessionKeyring, WebCryptoDeviceKey } from '@kai-sync/crypto'
import type { SessionChange } from '@kai-sync/model'
import { createSession } from './session'
import { SyncEngine } from './sync-engine'
import { WireDoc } from './wire-doc'

// An app that reacts to what arrived writes from inside the session doc's
// change event: an agent answering, a page marking something read. That
// write is a transaction of its own, made while the remote one is being
// cleaned up, and it must be sealed like any other.

describe('a write made while a remote change is being applied', () => {
  it('is sealed and reaches the other device, not left only in this session doc', async () => {
    const owner = await createSession({ device: await WebCryptoDeviceKey.generate(), mode: 'headless', agentId: 'a', userId: 'u', compactAfter: null })
    const writerKey = await WebCryptoDeviceKey.generate()
    await owner.setRole(writerKey.publicKey, 'writer', { label: 'writer' })
    const writerWire = new WireDoc()
    Y.applyUpdate(writerWire.doc, Y.encodeStateAsUpdate(owner.wire.doc))
    const writer = await SyncEngine.open({ sessionId: owner.sessionId, wire: writerWire, device: writerKey, keys: new SessionKeyring([owner.keys.current]), mode: 'tab', compactAfter: null })

    // The owner answers the question the moment it shows up.
    owner.session.on('change', (change: SessionChange) => {
      if (change.messages.has('q') && !owner.session.message('answer')) owner.session.appendMessage({ id: 'answer', role: 'assistant', content: 'an answer' })
    })
    writer.session.appendMessage({ id: 'q', role: 'user', content: 'a question' })
    await writer.flush()
    Y.applyUpdate(owner.wire.doc, Y.encodeStateAsUpdate(writer.wire.doc, Y.encodeStateVector(owner.wire.doc)))
    await owner.whenIdle()
    expect(owner.session.message('answer')?.content).toBe('an answer')
    await owner.flush()

    expect(owner.status.unsealed).toBe(0)
    Y.applyUpdate(writer.wire.doc, Y.encodeStateAsUpdate(owner.wire.doc, Y.encodeStateVector(writer.wire.doc)))
    await writer.whenIdle()
    expect(writer.session.message('answer')?.content).toBe('an answer')
    owner.destroy()
    writer.destroy()
  })
})
