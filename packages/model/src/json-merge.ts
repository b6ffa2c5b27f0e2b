import type { Json } from './schemas'

/** One concurrent write as the merge sees it: its value and what it replaced. */
export interface MergeCandidate {
  value: Json
  /** Values the write superseded (its base); none for a first write. */
  replaced?: readonly Json[]
}

/**
 * JSON with object keys sorted, so equal values give equal strings on
 * every replica whatever order their keys were written in.
 */
export function canonicalJson(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (isObject(value)) {
    const keys = Object.keys(value).sort()
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k]!)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/**
 * Merges concurrent writes of one value, given oldest first (by clock).
 * Lists merge as sets and objects key by key, each against the bases the
 * writers saw: what one writer added stays, what one removed goes unless
 * another added it at the same time (add wins). Anything else (a string, a
 * number, values of different kinds) cannot merge: the latest write that
 * changed it wins, so an untouched copy does not undo another's change.
 */
export function mergeConcurrent(candidates: readonly MergeCandidate[]): Json {
  const last = candidates[candidates.length - 1]
  if (!last) throw new Error('mergeConcurrent needs at least one candidate')
  if (candidates.length === 1) return last.value
  if (candidates.every((c) => Array.isArray(c.value))) return mergeLists(candidates)
  if (candidates.every((c) => isObject(c.value))) return mergeObjects(candidates)
  const changed = candidates.filter((c) => !(c.replaced ?? []).some((r) => canonicalJson(r) === canonicalJson(c.value)))
  return (changed[changed.length - 1] ?? last).value
}

/** Which members each candidate added to and removed from its base, over all candidates. */
function edits(members: (v: Json) => string[], candidates: readonly MergeCandidate[]): { added: Set<string>; removed: Set<string> } {
  const added = new Set<string>()
  const removed = new Set<string>()
  for (const c of candidates) {
    const mine = new Set(members(c.value))
    const base = new Set((c.replaced ?? []).flatMap(members))
    for (const m of mine) if (!base.has(m)) added.add(m)
    for (const m of base) if (!mine.has(m)) removed.add(m)
  }
  return { added, removed }
}

function mergeLists(candidates: readonly MergeCandidate[]): Json[] {
  const members = (v: Json) => (Array.isArray(v) ? v.map(canonicalJson) : [])
  const { added, removed } = edits(members, candidates)
  const out: Json[] = []
  const seen = new Set<string>()
  // The latest writer's order first, then what only earlier writers have.
  for (let i = candidates.length - 1; i >= 0; i--) {
    for (const element of candidates[i]!.value as Json[]) {
      const key = canonicalJson(element)
      if (seen.has(key)) continue
      seen.add(key)
      if (!removed.has(key) || added.has(key)) out.push(element)
    }
  }
  return out
}

function mergeObjects(candidates: readonly MergeCandidate[]): { [key: string]: Json } {
  const members = (v: Json) => (isObject(v) ? Object.keys(v) : [])
  const { added, removed } = edits(members, candidates)
  const keys = new Set(candidates.flatMap((c) => members(c.value)))
  const out: { [key: string]: Json } = {}
  for (const key of [...keys].sort()) {
    if (removed.has(key) && !added.has(key)) continue
    const inner: MergeCandidate[] = []
    for (const c of candidates) {
      const obj = c.value as { [key: string]: Json }
      if (!Object.hasOwn(obj, key)) continue
      const replaced = (c.replaced ?? []).filter((r): r is { [key: string]: Json } => isObject(r) && Object.hasOwn(r, key)).map((r) => r[key]!)
      inner.push({ value: obj[key]!, replaced })
    }
    out[key] = mergeConcurrent(inner)
  }
  return out
}

function isObject(v: Json): v is { [key: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
