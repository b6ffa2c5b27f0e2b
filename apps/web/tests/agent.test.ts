import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from '@kai-sync/browser-harness'
import { startTestModelServer, type TestModelServer } from '@kai-sync/agent/testing'
import { spawnDaemon, type DaemonProcess } from '@kai-sync/daemon/testing'
import { startRelay, type SpawnedRelay } from './relay-harness'
import { expectNoPageErrors, openPwa, screenshot, send, sessionReady, trustRelay, type Pwa } from './web-harness'

// The agent device in the web app (issue 15), all real: a kai-relay
// process, `kai agent` (a daemon process with the agent device) against a
// local server speaking the OpenAI streaming wire format (it stands in for
// the model; the server records when the client hung up), and the PWA in
// Chromium. The agent creates the session and hands it to the page as a
// second writer, as `kai handoff` does; the page never runs its demo agent
// then, shows the agent and model, stops a reply and asks for a retry.

const LONG = { timeout: 60_000 }
let model: TestModelServer
let relay: SpawnedRelay
let pwa: Pwa
let agent: DaemonProcess
let page: Page
let sessionId: string
let pageErrors: () => void

const agentEnv = () => ({ OPENAI_BASE_URL: model.baseUrl, OPENAI_API_KEY: 'test-key', KAI_AGENT_MODEL: 'test-model' })

type Shown = { id: string; status: string; content: string; author: string; ending: string }
/** The assistant messages as the page draws them. */
function shownReplies(p: Page): Promise<Shown[]> {
  return p.$$eval('[data-testid=history] .message.assistant', (els) =>
    els.map((el) => ({
      id: el.getAttribute('data-message-id') ?? '',
      status: el.getAttribute('data-status') ?? '',
      content: el.querySelector('.content')?.textContent ?? '',
      author: el.querySelector('[data-testid=reply-author]')?.textContent ?? '',
      ending: el.querySelector('.ending')?.textContent ?? '',
    })),
  )
}

/** Waits until the page shows `n` replies and the last satisfies `done` (checked in the page, on what it draws). */
async function waitForReply(p: Page, n: number, status: string, minLength = 0): Promise<Shown> {
  await p.waitForFunction(
    ({ n, status, minLength }) => {
      const els = document.querySelectorAll('[data-testid=history] .message.assistant')
      const last = els[n - 1]
      return els.length === n && last?.getAttribute('data-status') === status && (last.querySelector('.content')?.textContent ?? '').length >= minLength
    },
    { n, status, minLength },
    LONG,
  )
  return (await shownReplies(p))[n - 1]!
}

/** Waits until the presence bar lists the agent device, not closing, in `state` (with `tools`, if given). */
async function waitForAgentPresence(p: Page, state: string, tools?: string): Promise<void> {
  await p.waitForFunction(
    ({ state, tools }) => {
      const el = document.querySelector('[data-testid=presence] .peer[data-remote=true][data-mode=headless][data-closing=false]')
      if (!el) return false
      return (el.querySelector('.peer-state')?.textContent ?? '') === state && (tools === undefined || (el.querySelector('.peer-tools')?.textContent ?? '') === tools)
    },
    { state, tools },
    LONG,
  )
}

beforeAll(async () => {
  model = await startTestModelServer()
  relay = await startRelay()
  pwa = await openPwa()
  agent = await spawnDaemon({ relayUrl: relay.url, label: 'kai agent', command: 'agent', env: agentEnv(), args: ['--app-url', pwa.url] })
  const created = await agent.api('POST', '/sessions', { agent_id: 'helper', user_id: 'ada' })
  expect(created.status, JSON.stringify(created.json)).toBeLessThan(300)
  sessionId = created.json.session_id as string
  // The page's profile trusts the relay once (the person's one confirmation), then opens the link the agent's daemon made.
  await trustRelay(pwa.profile, pwa.url, relay.url)
  const handoff = await agent.api('POST', `/session/${sessionId}/handoff`, { session_id: sessionId, source_mode: 'headless', target_mode: 'desktop', transfer_type: 'mirror' })
  expect(handoff.status, JSON.stringify(handoff.json)).toBe(200)
  page = await pwa.profile.newPage(handoff.json.resume_url as string)
  pageErrors = expectNoPageErrors(page)
  await sessionReady(page)
}, 120_000)

afterAll(async () => {
  await pwa?.close()
  agent?.cleanup()
  await relay?.close()
  await model?.close()
})

describe('the agent device answers in the web app', () => {
  it('the page says the agent answers before any reply, runs no demo agent, and the reply appears token by token', async () => {
    await page.waitForSelector('[data-testid=answerer][data-kind=agent]', LONG)
    expect(await page.textContent('[data-testid=answerer]')).toContain('kai agent (test-model')
    // The agent device is in the presence bar under its name, idle.
    await waitForAgentPresence(page, '', '')
    expect(await page.textContent('[data-testid=presence] .peer[data-mode=headless] .peer-name')).toBe('kai agent')
    const tokens = Array.from({ length: 12 }, (_, i) => `word${i} `)
    model.enqueue({ tokens, delayMs: 150 })
    // Record every distinct content the page draws for the reply while it streams.
    // And beside it, how the presence bar shows the agent device while the reply is drawn (state, tools, reply status).
    await page.evaluate(() => {
      const seen: string[] = ((window as any).kaiSeen = [])
      new MutationObserver(() => {
        const c = document.querySelector('[data-testid=history] .message.assistant .content')?.textContent ?? ''
        if (c && seen.at(-1) !== c) seen.push(c)
      }).observe(document.querySelector('[data-testid=history]')!, { subtree: true, childList: true, characterData: true })
      const shown: string[] = ((window as any).kaiAgentShown = [])
      const record = () => {
        const el = document.querySelector('[data-testid=presence] .peer[data-remote=true][data-mode=headless]')
        const reply = document.querySelector('[data-testid=history] .message.assistant')
        const now = [el?.querySelector('.peer-state')?.textContent ?? '', el?.querySelector('.peer-tools')?.textContent ?? '', reply?.getAttribute('data-status') ?? 'none'].join('|')
        if (shown.at(-1) !== now) shown.push(now)
      }
      new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true })
    })
    await send(page, 'hello agent')
    const done = await waitForReply(page, 1, 'complete', tokens.join('').length)
    // Once the reply has ended, the agent device no longer shows replying.
    await waitForAgentPresence(page, '', '')
    expect(done.content).toBe(tokens.join(''))
    // While the reply streamed, the presence bar said the agent was replying, and with what.
    const agentShown = (await page.evaluate(() => (window as any).kaiAgentShown)) as string[]
    expect(agentShown).toContain('replying|model:test-model|streaming')
    expect(done.author).toBe('kai agent · test-model')
    const seen = (await page.evaluate(() => (window as any).kaiSeen)) as string[]
    // Drawn growing: many partial contents, each a prefix of the next (not once, whole).
    expect(seen.length).toBeGreaterThanOrEqual(6)
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.startsWith(seen[i - 1]!)).toBe(true)
    // One reply, the agent's: the page's demo agent wrote none.
    const inDoc = await page.evaluate(() => kaiApp.session!.engine.session.messages().filter((m) => m.role === 'assistant').map((m) => m.metadata ?? {}))
    expect(inDoc).toEqual([expect.objectContaining({ agent: 'kai agent', model: 'test-model' })])
    await new Promise((r) => setTimeout(r, 1_000))
    expect(await page.$$('[data-testid=history] .message.assistant')).toHaveLength(1)
  })

  it('Stop in the page ends the reply stopped, its text kept; the model request is closed within 200 ms of the click', async () => {
    const before = model.requests.length
    model.enqueue({ tokens: Array.from({ length: 300 }, (_, i) => `t${i} `), delayMs: 100 })
    await send(page, 'talk for a long time')
    await waitForReply(page, 2, 'streaming', 20)
    const request = await model.request(before)
    const clickedAt = Date.now()
    await page.click('[data-testid=history] .message.assistant:last-child [data-testid=stop-reply]')
    const stopped = await waitForReply(page, 2, 'stopped')
    await waitForAgentPresence(page, '', '')
    await expect.poll(() => request.clientClosedAt, { timeout: 10_000 }).toBeDefined()
    const clickToClose = request.clientClosedAt! - clickedAt
    console.log(`Stop clicked in the page -> model connection closed: ${clickToClose} ms (${request.sent} of 300 tokens sent)`)
    expect(clickToClose).toBeLessThan(200)
    expect(request.sent).toBeLessThan(300)
    expect(stopped.ending).toContain('Stopped')
    expect(stopped.content.length).toBeGreaterThan(20)
    expect(stopped.content.startsWith('t0 t1 ')).toBe(true)
    await screenshot(page, 'agent-stopped')
  })

  it('a SIGKILL of the agent mid-reply: after its restart the page shows interrupted, and Try again brings a new reply', async () => {
    model.enqueue({ tokens: Array.from({ length: 300 }, (_, i) => `k${i} `), delayMs: 100 })
    await send(page, 'you will be killed')
    const partial = await waitForReply(page, 3, 'streaming', 20)
    await waitForAgentPresence(page, 'replying', 'model:test-model')
    await agent.process.kill9()
    // Its presence goes with its connection (the relay drops the states a closed connection introduced).
    await page.waitForSelector('[data-testid=presence] .peer[data-mode=headless]', { state: 'detached', ...LONG })
    agent = await agent.restart(agentEnv())
    const interrupted = await waitForReply(page, 3, 'interrupted')
    expect(interrupted.id).toBe(partial.id)
    expect(interrupted.ending).toContain('Interrupted')
    expect(interrupted.content.startsWith(partial.content)).toBe(true)
    // Back, and not replying: the buffer it left at rest is not published as a live reply.
    await waitForAgentPresence(page, '', '')
    await screenshot(page, 'agent-interrupted')
    model.enqueue({ tokens: ['Here ', 'it ', 'is ', 'again.'], delayMs: 20 })
    await page.click(`[data-message-id="${interrupted.id}"] [data-testid=retry-reply]`)
    const again = await waitForReply(page, 4, 'complete', 'Here it is again.'.length)
    expect(again.content).toBe('Here it is again.')
    const meta = await page.evaluate((id) => kaiApp.session!.engine.session.message(id)?.metadata, again.id)
    expect(meta).toMatchObject({ agent: 'kai agent', retry_of: interrupted.id })
    // The button goes once asked: no second retry from this page.
    expect(await page.$(`[data-message-id="${interrupted.id}"] [data-testid=retry-reply]`)).toBeNull()
    pageErrors()
  })

  it('a model stream cut halfway ends the reply in error, with its code in the page, and the agent no longer shows replying', async () => {
    model.enqueue({ tokens: Array.from({ length: 60 }, (_, i) => `c${i} `), delayMs: 100, cutAfter: 12 })
    await send(page, 'this one breaks')
    await waitForReply(page, 5, 'streaming', 6)
    await waitForAgentPresence(page, 'replying', 'model:test-model')
    const failed = await waitForReply(page, 5, 'error')
    expect(failed.content).toBe(Array.from({ length: 12 }, (_, i) => `c${i} `).join(''))
    expect(failed.ending).toMatch(/^Error: .+ \(model_stream_cut\)$/)
    await waitForAgentPresence(page, '', '')
    await screenshot(page, 'agent-error')
    pageErrors()
  })
})
