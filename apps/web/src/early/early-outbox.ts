// Messages a person sends before the session is open (the app's code still
// arriving, or the session loading), kept until the session takes them.
// They are sealed before they touch the disk, like everything else here:
// AES-GCM under a key of this store's own, made here, non-extractable, kept
// as a CryptoKey in IndexedDB (its bytes never reach JavaScript). The
// record's id and session id are the additional data, so a record cannot be
// moved to another session or message. WebCrypto and IndexedDB are the
// browser's own: this file adds no library to the first load.

const DB = 'kai-early'
const KEYS = 'key'
const OUTBOX = 'outbox'
const enc = new TextEncoder()
const dec = new TextDecoder()

export interface EarlyMessage {
  id: string
  sessionId: string
  /** When the person sent it (ms since the epoch): the message's timestamp in the session. */
  at: number
  text: string
}

interface Sealed {
  id: string
  sessionId: string
  iv: Uint8Array<ArrayBuffer>
  sealed: ArrayBuffer
}

let opened: Promise<IDBDatabase> | null = null

function db(): Promise<IDBDatabase> {
  opened ??= new Promise<IDBDatabase>((resolve, reject) => {
    const req = indexedDB.open(DB, 1)
    req.onupgradeneeded = () => {
      req.result.createObjectStore(KEYS)
      req.result.createObjectStore(OUTBOX, { keyPath: 'id' }).createIndex('session', 'sessionId')
    }
    req.onsuccess = () => {
      // Another context deleting the store (site data cleared) closes this one: open it afresh next time.
      req.result.onversionchange = () => {
        req.result.close()
        opened = null
      }
      resolve(req.result)
    }
    req.onerror = () => reject(req.error)
  })
  opened.catch(() => (opened = null))
  return opened
}

function done<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
  })
}

function committed(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = tx.onabort = () => reject(tx.error ?? new Error('the transaction was aborted'))
  })
}

let key: Promise<CryptoKey> | null = null

/**
 * The store's key. Two contexts may make one at once: each generates a key,
 * then in one read-write transaction keeps whichever is there first, so
 * nobody seals under a key that is then replaced.
 */
function sealKey(): Promise<CryptoKey> {
  key ??= (async () => {
    const d = await db()
    const existing = (await done(d.transaction(KEYS).objectStore(KEYS).get('k'))) as CryptoKey | undefined
    if (existing) return existing
    const made = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt'])
    const tx = d.transaction(KEYS, 'readwrite')
    const store = tx.objectStore(KEYS)
    const kept = done(store.get('k')).then((found) => {
      const k = found as CryptoKey | undefined
      if (k) return k
      store.put(made, 'k')
      return made
    })
    await committed(tx)
    return kept
  })()
  key.catch(() => (key = null))
  return key
}

const aad = (id: string, sessionId: string) => enc.encode(`${sessionId}\n${id}`)

/** Seals and stores a message; resolves once it is on disk. */
export async function keep(m: EarlyMessage): Promise<void> {
  const k = await sealKey()
  const iv = crypto.getRandomValues(new Uint8Array(12))
  const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad(m.id, m.sessionId) }, k, enc.encode(JSON.stringify({ at: m.at, text: m.text })))
  const tx = (await db()).transaction(OUTBOX, 'readwrite')
  tx.objectStore(OUTBOX).put({ id: m.id, sessionId: m.sessionId, iv, sealed } satisfies Sealed)
  await committed(tx)
}

/**
 * A session's kept messages, oldest first. A record that does not open
 * (damaged, or sealed under a key since lost) is counted, not returned, and
 * stays where it is: nothing here deletes what it cannot read.
 */
export async function kept(sessionId: string): Promise<{ messages: EarlyMessage[]; unreadable: number }> {
  const records = (await done((await db()).transaction(OUTBOX).objectStore(OUTBOX).index('session').getAll(sessionId))) as Sealed[]
  if (records.length === 0) return { messages: [], unreadable: 0 }
  const k = await sealKey()
  const messages: EarlyMessage[] = []
  let unreadable = 0
  for (const r of records) {
    try {
      const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: r.iv, additionalData: aad(r.id, r.sessionId) }, k, r.sealed)
      const { at, text } = JSON.parse(dec.decode(plain)) as { at: number; text: string }
      if (typeof at !== 'number' || typeof text !== 'string') throw new Error('not a message')
      messages.push({ id: r.id, sessionId: r.sessionId, at, text })
    } catch {
      unreadable++
    }
  }
  return { messages: messages.sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1)), unreadable }
}

/** Deletes messages the session has taken (by id), or every message of a session left on this device. */
export async function forget(ids: readonly string[] | { sessionId: string }): Promise<void> {
  const d = await db()
  const which = 'sessionId' in ids ? await done<IDBValidKey[]>(d.transaction(OUTBOX).objectStore(OUTBOX).index('session').getAllKeys(ids.sessionId)) : ids
  if (which.length === 0) return
  const tx = d.transaction(OUTBOX, 'readwrite')
  for (const id of which) tx.objectStore(OUTBOX).delete(id)
  await committed(tx)
}
