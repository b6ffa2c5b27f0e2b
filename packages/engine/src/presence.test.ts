import * as Y from 'yjs'
import { applyAwarenessUpdate, encodeAwarenessUpdate } from 'y-protocols/awareness'
import { afterEach, describe, expect, it } from 'vitest'
import { SessionKeyring, WebCryptoDeviceKey } from '@kai-sync/crypto'
import { WireDoc } from './wire-doc'
import { SyncEngine } from './sync-engine'
import { createSession } from './session'
import { Presence, openPresence, sealPresence } from './presence'

const cleanup: Array<{ destroy(): void }> = []
afterEach(() => {
  for (const c of cleanup.splice(0)) c.destroy()
})

async function twoContexts() {
  const owner = await createSession({ device: await WebCryptoDeviceKey.generate(), mode: 'desktop', agentId: 'a', userId: 'u' })
  const phoneKey = await WebCryptoDeviceKey.generate()
  await owner.setRole(phoneKey.publicKey, 'writer', { label: 'phone' })
  const wire = new WireDoc()
  Y.applyUpdate(wire.doc, Y.encodeStateAsUpdate(owner.wire.doc))
  const phone = await SyncEngine.open({ sessionId: owner.sessionId, wire, device: phoneKey, keys: new SessionKeyring([owner.keys.current]), mode: 'mobile' })
  const a = new Presence(owner, { mode: 'sidepanel', label: 'side panel' })
  const b = new Presence(phone, { mode: 'mobile', label: 'phone' })
  cleanup.push(a, b, owner, phone)
  return { owner, phone, a, b }
}

/** What a relay forwards: the encoded awareness update, both ways. */
function relay(from: Presence, to: Presence): Uint8Array {
  const update = encodeAwarenessUpdate(from.awareness, [from.awareness.clientID])
  applyAwarenessUpdate(to.awareness, update, 'relay')
  return update
}

async function settled(p: Presence): Promise<void> {
  await new Promise((r) => setTimeout(r, 20))
  await p.publish()
}

describe('presence', () => {
  it('shares a context\'s volatile state live, sealed: the relay sees no plaintext', async () => {
    const { a, b } = await twoContexts()
    await a.publish({ volatile: { streaming: { message_id: 'r1', buffer: 'half a rep' }, scratchpad: 'SECRET-NOTE', active_tools: ['search'] } })
    const forwarded = relay(a, b)
    await settled(b)
    expect(Buffer.from(forwarded).includes('SECRET-NOTE')).toBe(false)
    expect(Buffer.from(forwarded).includes('half a rep')).toBe(false)
    const seen = b.peers().find((p) => !p.self)!
    expect(seen).toMatchObject({ mode: 'sidepanel', label: 'side panel', role: 'owner', closing: false })
    expect(seen.volatile).toMatchObject({ scratchpad: 'SECRET-NOTE', streaming: { message_id: 'r1', buffer: 'half a rep' }, active_tools: ['search'] })
  })

  it('a closing context shows as closing to the others, then stays listed as closed', async () => {
    const { a, b } = await twoContexts()
    // A transport: every awareness change of a's is forwarded as it happens.
    a.awareness.on('update', ({ added, updated, removed }: Record<string, number[]>) => {
      applyAwarenessUpdate(b.awareness, encodeAwarenessUpdate(a.awareness, [...added!, ...updated!, ...removed!]), 'relay')
    })
    await a.publish()
    await settled(b)
    expect(b.peers().filter((p) => !p.self)).toEqual([expect.objectContaining({ closing: false })])
    const seen: boolean[] = []
    b.on('change', (peers) => seen.push(peers.some((p) => !p.self && p.closing)))
    await a.close()
    await settled(b)
    expect(b.peers().filter((p) => !p.self)).toEqual([expect.objectContaining({ mode: 'sidepanel', closing: true })])
    expect(seen).toContain(true)
  })

  it('closeNow shows the context as closing at once, with no await (pagehide), and publishes nothing after', async () => {
    const { a, b } = await twoContexts()
    a.awareness.on('update', ({ added, updated, removed }: Record<string, number[]>) => {
      applyAwarenessUpdate(b.awareness, encodeAwarenessUpdate(a.awareness, [...added!, ...updated!, ...removed!]), 'relay')
    })
    await a.publish({ volatile: { scratchpad: 'before closing' } })
    await settled(b)
    const late = a.publish({ volatile: { scratchpad: 'after closing' } })
    a.closeNow()
    expect(a.awareness.getLocalState()).toBeNull()
    await late
    await settled(b)
    expect(a.awareness.getLocalState()).toBeNull()
    expect(b.peers().filter((p) => !p.self)).toEqual([expect.objectContaining({ mode: 'sidepanel', closing: true, volatile: expect.objectContaining({ scratchpad: 'before closing' }) })])
  })

  it('ignores presence from a device outside the roster, and states older than the newest', async () => {
    const { owner, b } = await twoContexts()
    const outsider = await SyncEngine.open({ sessionId: owner.sessionId, wire: new WireDoc(), device: await WebCryptoDeviceKey.generate(), keys: owner.keys, mode: 'tab' })
    cleanup.push(outsider)
    await expect(openPresence(b['engine'], await sealPresence(outsider, { mode: 'tab', label: 'x', volatile: { active_tools: [], streaming: null, scratchpad: '', ui_state: {} }, closing: false }))).rejects.toMatchObject({ code: 'unknown_signer' })

    const a = new Presence(owner, { mode: 'tab' })
    cleanup.push(a)
    await a.publish({ volatile: { scratchpad: 'old' } })
    const old = encodeAwarenessUpdate(a.awareness, [a.awareness.clientID])
    await a.publish({ volatile: { scratchpad: 'new' } })
    relay(a, b)
    await settled(b)
    applyAwarenessUpdate(b.awareness, old, 'replayed')
    await settled(b)
    expect(b.peers().find((p) => !p.self)!.volatile.scratchpad).toBe('new')
  })

  it('a sealed state round-trips at rest (a reload) and a tampered one is refused', async () => {
    const { owner } = await twoContexts()
    const state = { mode: 'popup' as const, label: 'popup', volatile: { active_tools: [], streaming: null, scratchpad: 'draft', ui_state: { draft: 'half-written' } }, closing: false }
    const sealed = await sealPresence(owner, state)
    expect((await openPresence(owner, sealed)).state).toEqual(state)
    sealed[sealed.length - 70]! ^= 1
    await expect(openPresence(owner, sealed)).rejects.toMatchObject({ code: expect.stringMatching(/bad_signature|decrypt_failed|malformed/) })
  })

  it('a signed state that is not a presence state is refused as malformed', async () => {
    const { owner } = await twoContexts()
    const sealed = await sealPresence(owner, { mode: 'nowhere', label: 3 } as never)
    await expect(openPresence(owner, sealed)).rejects.toMatchObject({ code: 'malformed', message: expect.stringContaining('the presence state does not parse') })
  })
})
