import { KaiError } from './errors'
import { canonicalJson } from './json-merge'
import { ConflictPolicySchema, type ConflictPolicy, type Json, type Mode } from './schemas'
import type { ConflictInfo, ConflictValue } from './exchange-schemas'

// What each policy shows for a field whose register holds several
// concurrent writes (heads). Pure functions of the heads, so every replica
// that holds the same merged state shows the same values and conflicts.

/** The policy of every field the session sets nothing for: the latest write wins, as before policies existed. */
export const DEFAULT_POLICY: ConflictPolicy = 'timestamp'

/** Where a policy is set: the session default, one config key, or the content of every message. */
export type PolicyTarget = 'default' | 'message.content' | `config.${string}`

/** A field policies govern, as named in ConflictInfo: `config.<key>` or `message.<id>.content`. */
export type PolicyField = { kind: 'config'; key: string } | { kind: 'message'; id: string }

const MESSAGE_PREFIX = 'message.'
const CONTENT_SUFFIX = '.content'

export function configField(key: string): string {
  return `config.${key}`
}

export function messageField(id: string): string {
  return `${MESSAGE_PREFIX}${id}${CONTENT_SUFFIX}`
}

export function parseField(field: string): PolicyField {
  if (field.startsWith('config.') && field.length > 'config.'.length) return { kind: 'config', key: field.slice('config.'.length) }
  if (field.startsWith(MESSAGE_PREFIX) && field.endsWith(CONTENT_SUFFIX) && field.length > MESSAGE_PREFIX.length + CONTENT_SUFFIX.length) {
    return { kind: 'message', id: field.slice(MESSAGE_PREFIX.length, -CONTENT_SUFFIX.length) }
  }
  throw new KaiError('invalid_input', `${JSON.stringify(field).slice(0, 60)} is not a field policies govern: use config.<key> or message.<id>.content`)
}

/** The target whose policy governs `field`, before falling back to the default. */
export function policyTargetOf(field: PolicyField): PolicyTarget {
  return field.kind === 'config' ? `config.${field.key}` : 'message.content'
}

export function assertPolicyTarget(target: string): asserts target is PolicyTarget {
  if (target === 'default' || target === 'message.content' || (target.startsWith('config.') && target.length > 'config.'.length)) return
  throw new KaiError('invalid_input', `${JSON.stringify(target).slice(0, 60)} is not a policy target: use default, message.content or config.<key>`)
}

/** A policy value read from the doc; anything else (another device's bad write, a cleared target) is no policy. */
export function asPolicy(value: unknown): ConflictPolicy | null {
  const parsed = ConflictPolicySchema.safeParse(value)
  return parsed.success ? parsed.data : null
}

/** One head of a register, as the policies see it. */
export interface PolicyWrite {
  value: Json
  hlc: string
  device: string
  mode?: Mode
  timestamp: number
}

export interface Resolution {
  /** What is shown. */
  visible: Json
  /** The open conflict, under `manual` and `user_choice` when the heads disagree. */
  conflict: ConflictInfo | null
}

/**
 * Applies `policy` to the heads of `field` (oldest first by clock, every
 * one valid for the field, at least one):
 * - `merge`: whatever `merge` makes of them (the CRDT or structural merge).
 * - `timestamp`: the head with the latest clock.
 * - `manual`, `user_choice`: the latest head is shown, so the value on
 *   screen is the one `timestamp` would pick and does not jump when the
 *   conflict opens; if the heads hold two or more different values, they
 *   are reported until a write that saw them all replaces them.
 * Concurrent writes of one same value are no conflict.
 */
export function resolveHeads<W extends PolicyWrite>(field: string, policy: ConflictPolicy, heads: readonly W[], merge: (heads: readonly W[]) => Json): Resolution {
  const latest = heads[heads.length - 1]
  if (!latest) throw new Error(`resolveHeads: ${field} has no writes`)
  if (policy === 'merge') return { visible: merge(heads), conflict: null }
  if (policy === 'timestamp') return { visible: latest.value, conflict: null }
  const byValue = new Map<string, W>()
  // Keep the latest write of each value; heads come oldest first.
  for (const h of heads) {
    const key = canonicalJson(h.value)
    byValue.delete(key)
    byValue.set(key, h)
  }
  if (byValue.size < 2) return { visible: latest.value, conflict: null }
  const values = [...byValue.values()].map(conflictValue)
  return { visible: latest.value, conflict: { field, policy, values, visible: latest.value } }
}

function conflictValue(w: PolicyWrite): ConflictValue {
  const v: ConflictValue = { value: w.value, device_id: w.device, hlc: w.hlc, timestamp: w.timestamp }
  if (w.mode !== undefined) v.mode = w.mode
  return v
}

/** Identifies one conflict among its successors: the field and the clocks of its writes. */
export function conflictKey(c: ConflictInfo): string {
  return `${c.field}\u0000${c.values.map((v) => v.hlc).join('\u0000')}`
}
