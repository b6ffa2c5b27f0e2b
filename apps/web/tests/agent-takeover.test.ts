import { afterAll, expect, it } from 'vitest'
import { launchChromium, type ChromiumProfile, type Page } from '@kai-sync/browser-harness'
import { startTestModelServer, type TestModelServer } from '@kai-sync/agent/testing'
import { spawnDaemon, type DaemonProcess } from '@kai-sync/daemon/testing'
import { startRelay, type SpawnedRelay } from './relay-harness'
import { handOff } from './two-devices'
import { expectNoPageErrors, openPwa, screenshot, send, sessionReady, trustRelay, type Pwa } from './web-harness'

// A takeover in the middle of an agent's reply (issue 15), all real: a
// kai-relay process, `kai agent` against a local server speaking the OpenAI
// streaming wire format, and the PWA in two Chromium profiles. The agent
// hands its session to the PWA in one profile (as `kai handoff` does); a
// slow, long reply streams there; mid-reply the person takes the session
// over ("Take over") to the other profile. The agent keeps writing its
// reply: the target sees it continue and finish with the exact text the
// model sent, once; the source goes read-only.

const LONG = { timeout: 90_000 }
const TOKENS = Array.from({ length: 240 }, (_, i) => `w${i} `)
const EXPECTED = TOKENS.join('')
let model: TestModelServer
let relay: SpawnedRelay
let pwa: Pwa
let other: ChromiumProfile
let agent: DaemonProcess

afterAll(async () => {
  await other?.close()
  await pwa?.close()
  agent?.cleanup()
  await relay?.close()
  await model?.close()
})

/** The assistant messages in the session as this page holds it. */
function replies(page: Page): Promise<Array<{ id: string; content: string; status: string; author: string }>> {
  return page.evaluate(() =>
    kaiApp.session!.engine.session
      .messages()
      .filter((m) => m.role === 'assistant')
      .map((m) => ({ id: m.id, content: m.content, status: m.status, author: m.author ?? '' })),
  )
}

/** Waits until the page holds and draws the one reply, complete, with the exact text. */
async function waitForExactReply(page: Page): Promise<void> {
  try {
    await page.waitForFunction(
      (expected) => {
        const m = kaiApp.session?.engine.session.messages().filter((x) => x.role === 'assistant')
        const shown = document.querySelectorAll('[data-testid=history] .message.assistant')
        return m?.length === 1 && m[0]!.status === 'complete' && m[0]!.content === expected && shown.length === 1 && shown[0]!.getAttribute('data-status') === 'complete'
      },
      EXPECTED,
      LONG,
    )
  } catch (e) {
    throw new Error(`the reply did not end complete with the exact text: ${JSON.stringify((await replies(page)).map((r) => ({ ...r, content: r.content.length })))} of ${EXPECTED.length} characters`, { cause: e })
  }
}

it('a takeover from one profile to another mid agent reply: the target sees the reply continue and finish exactly, once; the source goes read-only', async () => {
  model = await startTestModelServer()
  relay = await startRelay()
  pwa = await openPwa()
  const env = { OPENAI_BASE_URL: model.baseUrl, OPENAI_API_KEY: 'test-key', KAI_AGENT_MODEL: 'test-model' }
  agent = await spawnDaemon({ relayUrl: relay.url, label: 'kai agent', command: 'agent', env, args: ['--app-url', pwa.url] })
  const created = await agent.api('POST', '/sessions', { agent_id: 'helper', user_id: 'ada' })
  expect(created.status, JSON.stringify(created.json)).toBeLessThan(300)
  const sessionId = created.json.session_id as string
  // Each profile trusts the relay once (the person's one confirmation).
  await trustRelay(pwa.profile, pwa.url, relay.url)
  other = await launchChromium()
  await trustRelay(other, pwa.url, relay.url)
  const handoff = await agent.api('POST', `/session/${sessionId}/handoff`, { session_id: sessionId, source_mode: 'headless', target_mode: 'desktop', transfer_type: 'mirror' })
  expect(handoff.status, JSON.stringify(handoff.json)).toBe(200)
  const source = await pwa.profile.newPage(handoff.json.resume_url as string)
  const sourceErrors = expectNoPageErrors(source)
  await sessionReady(source)
  await source.waitForSelector('[data-testid=answerer][data-kind=agent]', LONG)

  // A long, slow reply: 240 tokens, one each 100 ms.
  model.enqueue({ tokens: TOKENS, delayMs: 100 })
  await send(source, 'tell me a long story')
  await source.waitForFunction(() => (kaiApp.session?.engine.session.messages().find((m) => m.role === 'assistant')?.content.length ?? 0) >= 40, undefined, LONG)

  // Mid-reply, the person hands the session over to the other profile.
  const target = await other.newPage(await handOff(source, 'takeover'))
  const targetErrors = expectNoPageErrors(target)
  await sessionReady(target)
  await source.waitForSelector('[data-testid=read-only][data-moved-to]', { timeout: 30_000 })

  // The reply was still streaming when the source stepped down; the target holds what was written so far and sees it grow.
  const atStepDown = (await replies(source))[0]!
  expect(atStepDown.status).toBe('streaming')
  expect(atStepDown.content.length).toBeLessThan(EXPECTED.length)
  await target.waitForFunction(
    (n) => {
      const m = kaiApp.session?.engine.session.messages().find((x) => x.role === 'assistant')
      return m?.status === 'streaming' && m.content.length > n
    },
    atStepDown.content.length,
    LONG,
  )
  // The target leaves the answering to the agent (no demo agent) and shows it replying.
  expect(await target.getAttribute('[data-testid=answerer]', 'data-kind')).toBe('agent')
  await target.waitForSelector('[data-testid=presence] .peer[data-mode=headless][data-closing=false] .peer-state:text("replying")', LONG)

  // It finishes with exactly what the model sent, marked complete, as one reply by the agent, on both.
  await waitForExactReply(target)
  await waitForExactReply(source)
  const [done] = await replies(target)
  expect(done!.id).toBe(atStepDown.id)
  // The agent's: written by neither page's device, both before and after the takeover.
  expect(done!.author).toBe(atStepDown.author)
  const pageDevices = [await source.evaluate(() => kaiApp.session!.engine.session.device), await target.evaluate(() => kaiApp.session!.engine.session.device)]
  expect(pageDevices).not.toContain(done!.author)
  expect(await target.evaluate((id) => kaiApp.session!.engine.session.message(id)?.metadata?.agent, done!.id)).toBe('kai agent')
  expect(await target.textContent('[data-testid=history] .message.assistant [data-testid=reply-author]')).toBe('kai agent · test-model')
  // Not written twice, and no second reply comes later (from the target's or the source's page).
  expect(model.requests.length).toBe(1)
  await target.waitForTimeout(1_500)
  expect(await replies(target)).toHaveLength(1)
  expect(await replies(source)).toHaveLength(1)
  // Once it ends, the agent no longer shows as replying.
  await target.waitForSelector('[data-testid=presence] .peer[data-mode=headless][data-closing=false] .peer-state', { state: 'detached', ...LONG })

  // The source is read-only: it may not write, and says where the session went.
  expect(await source.evaluate(() => kaiApp.session!.engine.canWrite)).toBe(false)
  expect(await target.evaluate(() => kaiApp.session!.engine.canWrite)).toBe(true)
  await screenshot(target, 'agent-takeover-target')
  await screenshot(source, 'agent-takeover-source')
  sourceErrors()
  targetErrors()
  console.log(`takeover with ${atStepDown.content.length} of ${EXPECTED.length} characters written; the target saw the rest`)
}, 300_000)
