import { afterEach, describe, expect, it } from 'vitest'
import type { Page } from '@kai-sync/browser-harness'
import { SessionKey, generateDeviceKey, grantKey, newStreamId, sealEnvelope } from '@kai-sync/crypto'
import { capabilityToParam, signCapability } from '@kai-sync/crypto/capability'
import { WireDoc } from '@kai-sync/engine'
import { connectRelay, type RelayConnection } from '@kai-sync/providers'
import { startRelay, type SpawnedRelay } from './relay-harness'
import { openPwa, send, startSession, useOfferedRelay, waitForSettledHistory, type Pwa } from './web-harness'

// The chip never says "synced" while the page holds something back, and it
// says what and why: a phone-sized PWA (touch) owns a session; another
// member, through a real kai-relay, sends one envelope sealed under a key
// epoch the page has no key for (held: wrong_epoch) and one under a key the
// session never had (refused: decrypt_failed). Tapped, the chip explains
// both with their counts and codes; once the member grants the key, the
// hold resolves and the chip says "Synced".

let relay: SpawnedRelay | undefined
let pwa: Pwa | undefined
let direct: RelayConnection | undefined
afterEach(async () => {
  direct?.destroy()
  await pwa?.close()
  await relay?.close()
  direct = pwa = relay = undefined
})

const chipState = (page: Page, state: string) =>
  page.waitForFunction((s) => document.querySelector('[data-testid=sync-status]')?.getAttribute('data-state') === s, state, { timeout: 30_000 })

describe('the sync status chip in Chromium', () => {
  it('shows held and refused envelopes with counts and codes, explains them on a tap, and says synced only once the hold resolves', async () => {
    relay = await startRelay()
    pwa = await openPwa({ mobile: true })
    const page = await pwa.profile.newPage(`${pwa.url}?relay=${encodeURIComponent(relay.url)}`)
    await useOfferedRelay(page, relay.url)
    const sessionId = await startSession(page)
    await send(page, 'Before anything is held')
    await waitForSettledHistory(page, 2)
    await chipState(page, 'synced')

    // A second writer, enrolled by the page (as `kai device add` does), with only public keys crossing.
    const member = await generateDeviceKey()
    await page.evaluate(async (key) => {
      await kaiApp.session!.engine.setRole(new Uint8Array(key), 'writer', { label: 'test member' })
    }, [...member.publicKey])
    const pageKeys = await page.evaluate(() => ({ device: [...kaiApp.session!.engine.device.publicKey], box: [...kaiApp.session!.engine.box!.publicKey] }))
    const wire = new WireDoc()
    direct = await connectRelay(wire, relay.url, async () => capabilityToParam(await signCapability({ room: sessionId }, member)))
    await direct.whenSynced(20_000)

    const later = await SessionKey.generate(7, { extractable: true })
    const never = await SessionKey.generate(0, { extractable: true })
    const header = () => ({ kind: 'update' as const, sessionId, stream: newStreamId(), seq: 1, prev: new Uint8Array(32), createdAt: Date.now(), clientIds: [], covers: [] })
    const held = await sealEnvelope({ header: header(), plaintext: new Uint8Array([0, 0]), key: later, signer: member })
    const refused = await sealEnvelope({ header: header(), plaintext: new Uint8Array([0, 0]), key: never, signer: member })
    wire.append([held.bytes, refused.bytes], 'test')

    await chipState(page, 'saved')
    await page.waitForFunction(() => document.querySelector('[data-testid=sync-status]')?.textContent?.includes('1 held'), null, { timeout: 30_000 })
    expect(await page.evaluate(() => kaiApp.session!.status.state)).not.toBe('synced')
    expect(await page.isVisible('[data-testid=sync-detail]')).toBe(false)
    await page.tap('[data-testid=sync-status]')
    const detail = await page.textContent('[data-testid=sync-detail]')
    expect(detail).toMatch(/1 update held back: 1 waiting for a key this device has not received yet \(wrong_epoch\)/)
    expect(detail).toMatch(/1 update refused: 1 they could not be decrypted \(decrypt_failed\)/)

    // The member grants the page the key of epoch 7: the held envelope applies.
    const grant = await grantKey({ sessionId, key: later, recipient: new Uint8Array(pageKeys.device), recipientBox: new Uint8Array(pageKeys.box), issuer: member })
    wire.addKeyGrants([grant.bytes], 'test')
    await chipState(page, 'synced')
    const after = await page.textContent('[data-testid=sync-detail]')
    expect(after).not.toMatch(/held back/)
    // A refusal is history, not something waiting: it stays counted.
    expect(after).toMatch(/1 update refused: .*\(decrypt_failed\)/)
    expect(await page.textContent('[data-testid=sync-status]')).toMatch(/Synced/)
  }, 120_000)
})
