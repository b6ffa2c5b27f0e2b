import { ConfigRegister, KaiError, parseInput, type Json, type SessionDelta, type VolatileState } from '@kai-sync/model'
import { SessionDeltaSchema } from '@kai-sync/model/rest-schemas'
import type { HostedSession } from './hosted-session'

/**
 * Applies a program's SessionDelta (the seed's /sync) all or nothing: the
 * whole delta is checked first, then written in one session-doc
 * transaction, so a bad part leaves the session as it was. Messages, audit
 * entries and memory snapshots are keyed by id: an id the session has
 * already keeps its first version, so sending a delta twice changes nothing.
 */
export function applySessionDelta(hosted: HostedSession, input: unknown): SessionDelta {
  const delta = parseInput(SessionDeltaSchema, input, 'delta')
  if (delta.session_id !== hosted.id) throw new KaiError('wrong_session', 'delta.session_id names another session than the path')
  hosted.assertWritable()
  if (!hosted.ready) hosted.record() // throws `unavailable` with the reason
  const config = configEntries(delta.config ?? {})
  const session = hosted.engine.session
  session.transact(() => {
    // The daemon signs what it writes, so it is the author and actor: every
    // other replica refuses an update naming another device (the program's
    // `device_id`, `author` or `actor` are its own claims, not a device).
    const self = session.device
    for (const m of delta.messages ?? []) session.appendMessage({ mode: delta.mode, ...m, author: self })
    for (const [field, value] of config) session.setConfig(field, value)
    for (const a of delta.audit ?? []) session.appendAudit({ ...a, actor: self })
    for (const s of delta.memory ?? []) session.addMemory({ ...s, author: self })
  })
  // Parsed from JSON, so an optional field is absent, never present as undefined.
  if (delta.volatile) hosted.setVolatile(delta.volatile as Partial<VolatileState>)
  return delta
}

/**
 * The fields of a config patch, every name checked first: ConfigRegister
 * checks a name only inside the transaction, where a throw would leave the
 * fields before it written.
 */
export function configEntries(patch: Record<string, Json | undefined>): Array<[string, Json]> {
  const entries = Object.entries(patch).filter((e): e is [string, Json] => e[1] !== undefined)
  for (const [field] of entries) ConfigRegister.assertField(field)
  return entries
}
