import type * as Y from 'yjs'

/**
 * Turns `text` into `next` with one deletion and one insertion between
 * their common prefix and suffix, so a concurrent edit elsewhere in the
 * text merges with this one instead of being overwritten. Never splits a
 * surrogate pair.
 */
export function replaceText(text: Y.Text, next: string): void {
  const prev = text.toString()
  if (prev === next) return
  const max = Math.min(prev.length, next.length)
  let start = 0
  while (start < max && prev.charCodeAt(start) === next.charCodeAt(start)) start++
  if (start > 0 && isHighSurrogate(prev.charCodeAt(start - 1))) start--
  let end = 0
  while (end < max - start && prev.charCodeAt(prev.length - 1 - end) === next.charCodeAt(next.length - 1 - end)) end++
  if (end > 0 && isLowSurrogate(prev.charCodeAt(prev.length - end))) end--
  const removed = prev.length - start - end
  if (removed > 0) text.delete(start, removed)
  const inserted = next.slice(start, next.length - end)
  if (inserted.length > 0) text.insert(start, inserted)
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff
}
