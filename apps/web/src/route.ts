import { useEffect, useState } from 'preact/hooks'

// The route lives in the fragment: `#/s/<session id>`, or a handoff's
// resume link `#kai=…`. A fragment never reaches a server, which is also
// why the handoff puts its secrets there.
export type Route = { view: 'session'; id: string | null } | { view: 'resume'; link: string }

export function parseRoute(hash: string): Route {
  const session = /^#\/s\/([A-Za-z0-9_-]{1,200})$/.exec(hash)
  if (session) return { view: 'session', id: session[1]! }
  if (hash.startsWith('#kai=')) return { view: 'resume', link: hash }
  return { view: 'session', id: null }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash))
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.hash))
    addEventListener('hashchange', update)
    return () => removeEventListener('hashchange', update)
  }, [])
  return route
}

/** Shows a session; `replace` when the app picked it, so Back does not bounce. */
export function goToSession(id: string, replace = false): void {
  const hash = `#/s/${id}`
  if (replace) {
    history.replaceState(null, '', hash)
    dispatchEvent(new HashChangeEvent('hashchange'))
  } else {
    location.hash = hash
  }
}

/** The session list (the latest session). The resume page already dropped its `#kai=`, so setting the hash alone would not announce a change. */
export function goHome(): void {
  history.replaceState(null, '', location.pathname + location.search)
  dispatchEvent(new HashChangeEvent('hashchange'))
}
