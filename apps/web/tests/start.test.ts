import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it, onTestFinished } from 'vitest'
import { startTestModelServer } from '@kai-sync/agent/testing'
import { launchChromium } from '@kai-sync/browser-harness'
import { RUN_TS, spawnChild } from '@kai-sync/process-harness'
import { expectNoPageErrors, send, sessionReady, shownHistory, useOfferedRelay, waitForSettledHistory } from './web-harness'

// The README's main job, `pnpm start`, as a person runs it: the relay with
// its demo session, the PWA beside it at a printed address that offers the
// relay (the person says Use once), and a resume link printed to the
// terminal that opens the demo session in the PWA.

const START = fileURLToPath(new URL('../../../scripts/start.ts', import.meta.url))

async function eventually(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

it('`pnpm start --show-link` runs the relay and a demo session, and its resume link opens that session in the PWA', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kai-start-'))
  const start = spawnChild(process.execPath, [...RUN_TS, START, '--port', '0', '--data-dir', dataDir, '--show-link'], { env: { KAI_WEB_PORT: '0' } })
  onTestFinished(async () => {
    await start.kill9()
    rmSync(dataDir, { recursive: true, force: true })
  })
  await start.waitFor((l) => l === 'kai-sync is running', 60_000, 'the start banner')
  const links = () => start.stdout.filter((l) => l.includes('#kai='))
  await eventually(() => links().length === 1, 'a resume link')
  expect(start.stderr.some((l) => l.includes('"msg":"demo session"'))).toBe(true)
  // The link holds the invite secret: it is printed for the person who asked (--show-link), never logged.
  expect(start.stderr.join('\n')).not.toContain('#kai=')

  const browser = await launchChromium()
  onTestFinished(() => browser.close())
  // The printed web app address offers the relay; the person says Use once.
  const webApp = /^ {2}web app {2}(\S+)/.exec(start.stdout.find((l) => l.startsWith('  web app  ')) ?? '')?.[1]
  const relayUrl = new URL(webApp!).searchParams.get('relay')!
  expect(relayUrl).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/)
  const home = await browser.newPage(webApp)
  await useOfferedRelay(home, relayUrl)
  expect(home.url()).not.toContain('relay=')
  await home.close()
  // Through the relay it said Use to, the link opens without asking.
  const page = await browser.newPage(links()[0]!)
  const noErrors = expectNoPageErrors(page)
  await sessionReady(page)
  await waitForSettledHistory(page, 2)
  expect(await shownHistory(page)).toEqual(['user: Hello from the demo device.', 'agent: This text reached the relay only as ciphertext.'])
  // No model endpoint in the environment: the page's demo agent answers, and says it is a demo.
  expect(await page.getAttribute('[data-testid=answerer]', 'data-kind')).toBe('demo')
  // The browser joined as a writer; the demo offers a fresh link for the next device.
  expect(await page.$('[data-testid=read-only]')).toBeNull()
  await eventually(() => links().length === 2 && links()[1] !== links()[0], 'a second resume link once the first was used')
  await send(page, 'Hello from the browser')
  await waitForSettledHistory(page, 4)
  noErrors()

  // Ctrl+C stops both, the relay cleanly.
  start.child.kill('SIGINT')
  expect(await start.exited).toBe(0)
  expect(start.stderr.some((l) => l.includes('"msg":"stopped"'))).toBe(true)
})

it('`pnpm start` with OPENAI_BASE_URL and KAI_AGENT_MODEL answers the demo session with that model, through kai agent; the page runs no demo agent', async () => {
  const model = await startTestModelServer()
  onTestFinished(() => model.close())
  model.enqueue({ tokens: ['Real ', 'model ', 'here.'], delayMs: 50 })
  const dataDir = mkdtempSync(join(tmpdir(), 'kai-start-'))
  const env = { KAI_WEB_PORT: '0', OPENAI_BASE_URL: model.baseUrl, OPENAI_API_KEY: 'start-test-key', KAI_AGENT_MODEL: 'start-model' }
  const start = spawnChild(process.execPath, [...RUN_TS, START, '--port', '0', '--data-dir', dataDir, '--show-link'], { env })
  onTestFinished(async () => {
    await start.kill9()
    rmSync(dataDir, { recursive: true, force: true })
  })
  await start.waitFor((l) => l === 'kai-sync is running', 60_000, 'the start banner')
  await start.waitFor((l) => l.startsWith('The demo session is answered by kai agent'), 90_000, 'the agent to join the demo session')
  const links = () => start.stdout.filter((l) => l.includes('#kai='))
  await eventually(() => links().length >= 1, 'a resume link', 60_000)
  const browser = await launchChromium()
  onTestFinished(() => browser.close())
  const webApp = /^ {2}web app {2}(\S+)/.exec(start.stdout.find((l) => l.startsWith('  web app  ')) ?? '')?.[1]
  const relayUrl = new URL(webApp!).searchParams.get('relay')!
  const home = await browser.newPage(webApp)
  await useOfferedRelay(home, relayUrl)
  await home.close()
  const page = await browser.newPage(links().at(-1)!)
  const noErrors = expectNoPageErrors(page)
  await sessionReady(page)
  await page.waitForSelector('[data-testid=answerer][data-kind=agent]', { timeout: 30_000 }).catch(async (e) => {
    const seen = await page.evaluate(() => ({ audit: kaiApp.session!.engine.session.audit().map((a) => `${a.action} ${a.actor}`), roster: kaiApp.session!.engine.roster.list().map((m) => `${m.label} ${m.role}`), status: kaiApp.session!.engine.status, msgs: kaiApp.session!.engine.session.messages().length }))
    throw new Error(`the page shows no agent: ${JSON.stringify(seen)}\n${start.stderr.filter((l) => /agent|warn|error/.test(l)).join('\n')}`, { cause: e })
  })
  expect(await page.textContent('[data-testid=answerer]')).toContain('kai agent (start-model')
  await send(page, 'Hello, real model')
  await waitForSettledHistory(page, 4)
  expect((await shownHistory(page)).slice(2)).toEqual(['user: Hello, real model', 'agent: Real model here.'])
  expect(await page.textContent('[data-testid=history] .message.assistant:last-child [data-testid=reply-author]')).toBe('kai agent · start-model')
  const request = await model.request(0)
  expect(request.body.model).toBe('start-model')
  expect(request.headers.authorization).toBe('Bearer start-test-key')
  // No demo reply came after it, and the model's key is in no output.
  await new Promise((r) => setTimeout(r, 1_000))
  expect(await page.$$('[data-testid=history] .message')).toHaveLength(4)
  expect([...start.stdout, ...start.stderr].join('\n')).not.toContain('start-test-key')
  noErrors()
  start.child.kill('SIGINT')
  expect(await start.exited).toBe(0)
})
