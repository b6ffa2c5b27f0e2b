import { afterEach, describe, expect, it } from 'vitest'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { kai, spawnDaemon, type DaemonProcess } from './testing'

const daemons: DaemonProcess[] = []
afterEach(() => {
  for (const d of daemons.splice(0)) d.cleanup()
})

describe('a daemon restart', () => {
  it('keeps its identity, token, sessions, messages, streamed replies and config', async () => {
    const first = await spawnDaemon()
    daemons.push(first)
    const { dataDir } = first
    const sessionId = (await kai(first, 'create', '--agent', 'planner', '--user', 'ada')).trim()
    await kai(first, 'append', sessionId, 'Plan a day in Lisbon.')
    await kai(first, 'config', 'set', sessionId, 'temperature', '0.3')
    // A reply streamed in two chunks and left unfinished, as an agent killed mid-reply would.
    const started = await first.api('POST', `/session/${sessionId}/messages`, { id: 'a1', role: 'assistant', status: 'streaming', content: 'Morning: ' })
    expect(started.status).toBe(201)
    expect((await first.api('POST', `/session/${sessionId}/messages/a1/stream`, { text: 'Belém.' })).status).toBe(200)
    const before = (await first.api('GET', `/session/${sessionId}`)).json
    const identity = (await first.api('GET', '/device')).json
    expect(await first.stop()).toBe(0)

    const second = await first.restart()
    daemons.push(second)
    expect(second.token).toBe(first.token)
    expect((await second.api('GET', '/device')).json).toEqual(identity)
    const after = await second.api('GET', `/session/${sessionId}`)
    expect(after.status).toBe(200)
    expect(after.json).toEqual(before)
    expect(after.json.messages.map((m: { content: string }) => m.content)).toEqual(['Plan a day in Lisbon.', 'Morning: Belém.'])
    expect(after.json.config.temperature).toBe(0.3)
    // Still writable after the restart: the session key came back from its file.
    expect((await second.api('POST', `/session/${sessionId}/messages/a1/stream`, { text: ' Afternoon: Alfama.', done: true })).json).toMatchObject({
      content: 'Morning: Belém. Afternoon: Alfama.',
      status: 'complete',
    })
    const listed = JSON.parse(await kai(second, '--json', 'list')) as { sessions: Array<{ session_id: string; role: string; messages: number }> }
    expect(listed.sessions).toEqual([expect.objectContaining({ session_id: sessionId, role: 'owner', messages: 2 })])
    expect(statSync(join(dataDir, 'keys', `${sessionId}.json`)).mode & 0o777).toBe(0o600)
  })
})
