// The PWA's service worker: keeps the app shell so the app opens with no
// network. Sessions need no network either: they live in IndexedDB.
declare const KAI_SHELL: string[]
declare const KAI_VERSION: string

// The worker types this file uses, declared here: the project compiles
// with the DOM library, and the webworker one cannot sit beside it.
interface ExtendableEvent extends Event {
  waitUntil(p: Promise<unknown>): void
}
interface FetchEvent extends ExtendableEvent {
  readonly request: Request
  respondWith(r: Promise<Response>): void
}
interface ServiceWorkerScope {
  addEventListener(type: 'install' | 'activate', f: (e: ExtendableEvent) => void): void
  addEventListener(type: 'fetch', f: (e: FetchEvent) => void): void
  skipWaiting(): Promise<void>
  clients: { claim(): Promise<void> }
}

const sw = self as unknown as ServiceWorkerScope
const CACHE = `kai-sync-shell-${KAI_VERSION}`

sw.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(KAI_SHELL)).then(() => sw.skipWaiting()))
})

sw.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name)
      await sw.clients.claim()
    })(),
  )
})

sw.addEventListener('fetch', (event) => {
  const request = event.request
  if (request.method !== 'GET' || new URL(request.url).origin !== location.origin) return
  // Every page of the app is the one shell; the session is in the fragment.
  const key = request.mode === 'navigate' ? 'index.html' : request
  event.respondWith(
    caches.match(key, { ignoreSearch: request.mode === 'navigate' }).then((cached) => cached ?? fetch(request)),
  )
})
