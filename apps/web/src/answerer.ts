import { agentsIn, type AgentPresence } from '@kai-sync/agent'
import type { BrowserSession } from '@kai-sync/browser'
import { deviceIdOf } from '@kai-sync/engine'
import type { Message } from '@kai-sync/model'

// Who answers in a session: an agent device that announced itself there and
// may still write (then this page runs no demo agent), else the demo agent
// built into the page.

export type Answerer = { kind: 'agent'; agents: AgentPresence[] } | { kind: 'demo' }

export function answererOf(session: BrowserSession): Answerer {
  const writers = new Set(
    session.engine.roster
      .list()
      .filter((m) => m.role === 'owner' || m.role === 'writer')
      .map((m) => deviceIdOf(m.device)),
  )
  const agents = agentsIn(session.engine.session, (device) => writers.has(device))
  return agents.length > 0 ? { kind: 'agent', agents } : { kind: 'demo' }
}

/** Which agent (and model) wrote a reply, from its metadata: "kai agent · gpt-4o", "Demo agent". */
export function replyAuthor(m: Message): string {
  if (m.metadata?.demo === true) return 'Demo agent (in this page, no model)'
  const agent = typeof m.metadata?.agent === 'string' ? m.metadata.agent : 'Agent'
  return typeof m.metadata?.model === 'string' ? `${agent} · ${m.metadata.model}` : agent
}
