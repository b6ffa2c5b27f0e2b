import type { AuditEntry, SessionDoc } from '@kai-sync/model'

// How a session says an agent device answers it, before its first reply:
// the agent device, once it may write, adds an `agent.present` audit entry
// of its own (signed like every write; the engine refuses one naming any
// other device as actor). Pages read it to leave the answering to that
// device (no demo agent) and to say which agent and model answer. It counts
// only while its actor may still write: a removed agent device stops
// counting, and the page's demo agent answers again.

/** The audit action by which an agent device announces itself in a session. */
export const AGENT_PRESENT_ACTION = 'agent.present'

export interface AgentPresence {
  /** The agent device's id (base64url public key). */
  device: string
  /** How it names itself (`metadata.agent` on its replies). */
  agent: string
  /** Its default model (a session's config.model overrides it), if it has one. */
  model: string | null
  since: number
}

/** Announces this device as the session's agent; one entry per device and model, so a restart adds none. */
export function announceAgent(doc: SessionDoc, who: { agent: string; model?: string | undefined }): AuditEntry {
  const model = who.model ?? null
  return doc.appendAudit({ id: `agent-present-${doc.device}-${model ?? 'none'}`, action: AGENT_PRESENT_ACTION, details: { agent: who.agent, model } })
}

/**
 * The agent devices that announced themselves and may still write
 * (`canWrite(device)`: the roster's say), latest announcement per device.
 */
export function agentsIn(doc: SessionDoc, canWrite: (device: string) => boolean): AgentPresence[] {
  const latest = new Map<string, AgentPresence>()
  for (const e of doc.audit()) {
    if (e.action !== AGENT_PRESENT_ACTION || typeof e.details?.agent !== 'string' || !canWrite(e.actor)) continue
    const model = typeof e.details.model === 'string' ? e.details.model : null
    const seen = latest.get(e.actor)
    if (!seen || seen.since <= e.timestamp) latest.set(e.actor, { device: e.actor, agent: e.details.agent, model, since: e.timestamp })
  }
  return [...latest.values()]
}
