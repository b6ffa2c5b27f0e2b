import { h, type ComponentType, type FunctionComponent } from 'preact'
import { useEffect, useState } from 'preact/hooks'

/**
 * A component whose code is fetched the first time it is shown (a chunk
 * beside app.js), so views that only some people open (dialogs, drawers,
 * the QR code) are not part of a page's first load. It draws nothing for
 * the moment the chunk takes to arrive, and says so if it cannot.
 */
export function lazyView<P extends object>(load: () => Promise<ComponentType<P>>): FunctionComponent<P> & { preload(): void } {
  let loaded: ComponentType<P> | null = null
  let pending: Promise<ComponentType<P>> | null = null
  const view = function LazyView(props: P) {
    const [failed, setFailed] = useState<string | null>(null)
    const [, setReady] = useState(false)
    useEffect(() => {
      if (loaded) return
      let live = true
      pending ??= load()
      pending.then(
        (c) => {
          loaded = c
          if (live) setReady(true)
        },
        (e: unknown) => {
          pending = null // the next opening tries again
          if (live) setFailed(e instanceof Error ? e.message : String(e))
        },
      )
      return () => {
        live = false
      }
    }, [])
    if (loaded) return h(loaded, props)
    if (failed)
      return h('p', { class: 'problem', role: 'alert', 'data-testid': 'view-load-failed' }, `This part of the app could not be loaded (${failed}). Check the connection and open it again.`)
    return null
  }
  /** Fetches the chunk ahead of time (when the page is idle), so opening the view is instant. */
  view.preload = () => {
    pending ??= load().then((c) => (loaded = c))
    pending.catch(() => (pending = null))
  }
  return view
}
