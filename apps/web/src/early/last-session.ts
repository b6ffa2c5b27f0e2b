// The session this browser last showed, so a page can draw it (and take
// typing for it) before the app's code has arrived: the shell knows no
// catalog. Its id and whether this device may write it are not secret (the
// relay sees the id; the roster says who writes), so they sit in
// localStorage, read synchronously at the first frame. Nothing of the
// session's content is kept here.

const KEY = 'kai-last-session'
const ID = /^[A-Za-z0-9_-]{1,200}$/

export interface LastSession {
  id: string
  canWrite: boolean
}

export function lastSession(): LastSession | null {
  try {
    const v: unknown = JSON.parse(localStorage.getItem(KEY) ?? 'null')
    if (v && typeof v === 'object' && 'id' in v && 'canWrite' in v && typeof v.id === 'string' && ID.test(v.id) && typeof v.canWrite === 'boolean') return { id: v.id, canWrite: v.canWrite }
  } catch {
    // Damaged or unreadable (storage blocked): the page opens as if it had never shown a session.
  }
  return null
}

export function rememberSession(session: LastSession | null): void {
  try {
    if (session) localStorage.setItem(KEY, JSON.stringify(session))
    else localStorage.removeItem(KEY)
  } catch {
    // Storage blocked or full: the next page draws "Opening…" until the app is there, as before.
  }
}

/** The session a page opening at `hash` will show, if the shell may draw it: the one last shown, when the fragment names it or names none. */
export function earlyTarget(hash: string): LastSession | null {
  const last = lastSession()
  if (!last) return null
  if (hash === '' || hash === '#' || hash === '#/') return last
  return hash === `#/s/${last.id}` ? last : null
}
