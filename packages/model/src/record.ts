import { type Json, type VolatileState } from './schemas'
import {
  SessionRecordSchema,
  type SessionRecord,
  type SessionRecordInput,
  type SessionState,
} from './exchange-schemas'
import { agentConfig, type ConfigResolver } from './config-view'
import type { SessionDoc } from './session-doc'

/** The session as shown: config and message contents under the session's policies, or `resolver` for config. */
export function toState(doc: SessionDoc, resolver?: ConfigResolver): SessionState {
  const meta = doc.metaOrNull()
  if (!meta) throw new Error('the session has no identity yet: call init() or import a record first')
  return {
    ...meta,
    messages: doc.messages(),
    config: agentConfig(resolver ? resolver(doc.configRegister) : doc.policies.configView()),
    audit: doc.audit(),
    memory: doc.memory(),
  }
}

/** The session record: its state as shown, and every conflict open under its policies, in `conflicts`. */
export function toRecord(
  doc: SessionDoc,
  options: { resolver?: ConfigResolver; volatile?: VolatileState } = {},
): SessionRecord {
  const view = options.resolver ? options.resolver(doc.configRegister) : doc.policies.configView()
  const state = toState(doc, () => view)
  // Config conflicts come from the resolver in use; message conflicts from the policies.
  const conflicts = [...view.conflicts, ...doc.policies.messageConflicts()]
  const record: SessionRecord = {
    ...state,
    updated_at: updatedAt(doc, state),
    conflicts,
  }
  if (options.volatile) record.volatile = options.volatile
  return SessionRecordSchema.parse(record)
}

/**
 * Loads a record into a session doc in one transaction: its identity,
 * messages, config, audit and memory. What the doc already has by id stays.
 * The doc's device writes them, so they are its own: authorship is the
 * writer's, and other replicas refuse an update naming another device.
 */
export function importRecord(doc: SessionDoc, input: SessionRecordInput): SessionRecord {
  const record = SessionRecordSchema.parse(input)
  doc.transact(() => {
    doc.init({
      session_id: record.session_id,
      agent_id: record.agent_id,
      user_id: record.user_id,
      created_at: record.created_at,
    })
    for (const m of record.messages) doc.appendMessage({ ...m, author: doc.device })
    const current = doc.policies.config()
    for (const [field, value] of Object.entries(record.config)) {
      if (JSON.stringify(current[field]) !== JSON.stringify(value)) doc.setConfig(field, value as Json)
    }
    for (const a of record.audit) doc.appendAudit({ ...a, actor: doc.device })
    for (const s of record.memory) doc.addMemory({ ...s, author: doc.device })
  })
  return record
}

function updatedAt(doc: SessionDoc, state: SessionState): number {
  let latest = state.created_at
  const lastOf = <T extends { timestamp: number }>(items: T[]) => items[items.length - 1]?.timestamp ?? 0
  latest = Math.max(latest, lastOf(state.messages), lastOf(state.audit), lastOf(state.memory))
  for (const w of doc.configRegister.allWrites()) latest = Math.max(latest, w.timestamp)
  return Math.max(latest, doc.policies.latestTimestamp())
}
