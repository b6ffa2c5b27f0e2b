import type * as Y from 'yjs'

/** The keys a Y.Map event changed (Yjs types them `any`; a Y.Map's keys are strings). */
export function keysOf<T>(event: Y.YMapEvent<T>): Set<string> {
  return event.keysChanged as Set<string>
}
