import type { BrowserSession } from '@kai-sync/browser'
import { deviceIdOf } from '@kai-sync/engine'
import type { ConflictPolicy, Json, PolicyTarget } from '@kai-sync/model'

// What a person does to a session from the app, each written with an
// audit entry in the same transaction (who, from which device and mode,
// when), so the audit log says who changed what on every replica.

function audited(session: BrowserSession, action: string, details: Record<string, Json>, write: () => void): void {
  const doc = session.engine.session
  doc.transact(() => {
    write()
    doc.appendAudit({ id: `a-${crypto.randomUUID()}`, action, details })
  })
}

export function setConfig(session: BrowserSession, field: string, value: Json): void {
  audited(session, 'config.set', { field, value }, () => session.engine.session.setConfig(field, value))
}

export function setPolicy(session: BrowserSession, target: PolicyTarget, policy: ConflictPolicy | null): void {
  audited(session, 'policy.set', { target, policy }, () => session.engine.session.policies.setPolicy(target, policy))
}

/** Keeps `value` for a field in conflict: a write that saw every conflicting one, so it replaces them all everywhere. */
export function resolveConflict(session: BrowserSession, field: string, value: Json): void {
  audited(session, 'conflict.resolved', { field, value }, () => session.engine.session.policies.resolveConflict(field, value))
}

export function addMemory(session: BrowserSession, summary: string, note: string): void {
  const id = `mem-${crypto.randomUUID()}`
  audited(session, 'memory.added', { id, summary }, () => session.engine.session.addMemory({ id, summary, data: { note } }))
}

/** A device as a person knows it: its roster label, else the start of its id. */
export function deviceName(session: BrowserSession, id: string): string {
  const engine = session.engine
  if (id === deviceIdOf(engine.device)) return 'this device'
  const member = engine.roster.list().find((m) => deviceIdOf(m.device) === id)
  return member?.label || `device ${id.slice(0, 8)}`
}
