import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { WebCryptoDeviceKey, utf8 } from '@kai-sync/crypto'
import { createSession } from './session'

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return true
  }
  return false
}

describe('the wire doc holds no plaintext', () => {
  it('a marker written into every part of the session never appears in its bytes, before or after compaction', async () => {
    const marker = `MARKER-${crypto.randomUUID()}`
    const engine = await createSession({ device: await WebCryptoDeviceKey.generate(), mode: 'desktop', agentId: `agent-${marker}`, userId: `user-${marker}`, compactAfter: null })
    const s = engine.session
    s.appendMessage({ id: `id-${marker}`, role: 'user', content: `content ${marker}`, metadata: { note: marker } })
    s.startStream({ id: 'reply', role: 'assistant' })
    s.streamText('reply', `streamed ${marker}`)
    s.setConfig('system_prompt', `prompt ${marker}`)
    s.setConfig('custom', { nested: marker })
    s.appendAudit({ id: `audit-${marker}`, action: `did ${marker}` })
    s.addMemory({ id: `mem-${marker}`, data: { fact: marker }, summary: marker })
    await engine.flush()
    const needle = utf8(marker)
    // The marker is really in the session doc, so the search can succeed.
    expect(contains(Y.encodeStateAsUpdate(s.doc), needle)).toBe(true)
    expect(contains(Y.encodeStateAsUpdate(engine.wire.doc), needle)).toBe(false)
    await engine.compact()
    expect(contains(Y.encodeStateAsUpdate(engine.wire.doc), needle)).toBe(false)
    engine.destroy()
  })
})
