// The page the package's tests drive in Chromium: exposes this package and
// what it builds on as `window.kai`, so each test's scenario runs against
// real IndexedDB, BroadcastChannel and WebCrypto.
import * as Y from 'yjs'
import * as model from '@kai-sync/model'
import * as record from '@kai-sync/model/record'
import * as crypto from '@kai-sync/crypto'
import * as engine from '@kai-sync/engine'
import * as browser from '../index'
import * as idb from '../device-db'

/** Every value in every object store of every IndexedDB database of this origin, as bytes and strings. */
async function dumpIndexedDb(): Promise<{ databases: string[]; strings: string[]; bytes: number[][] }> {
  const strings: string[] = []
  const bytes: number[][] = []
  const visit = (v: unknown, depth = 0): void => {
    if (depth > 20 || v === null || v === undefined) return
    if (typeof v === 'string') strings.push(v)
    else if (v instanceof Uint8Array) bytes.push([...v])
    else if (v instanceof ArrayBuffer) bytes.push([...new Uint8Array(v)])
    else if (Array.isArray(v)) v.forEach((x) => visit(x, depth + 1))
    else if (typeof v === 'object' && !(v instanceof CryptoKey)) for (const x of Object.values(v)) visit(x, depth + 1)
  }
  const names = (await indexedDB.databases()).map((d) => d.name!).filter(Boolean)
  for (const name of names) {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open(name)
      r.onsuccess = () => resolve(r.result)
      r.onerror = () => reject(r.error)
    })
    for (const storeName of db.objectStoreNames) {
      const store = db.transaction(storeName, 'readonly').objectStore(storeName)
      const [keys, values] = await Promise.all([idb.request(store.getAllKeys()), idb.request(store.getAll())])
      visit(keys)
      visit(values)
    }
    db.close()
  }
  return { databases: names, strings, bytes }
}

/** True if `marker` (UTF-8) occurs in any string or byte value IndexedDB holds. */
async function indexedDbContains(marker: string): Promise<boolean> {
  const { strings, bytes } = await dumpIndexedDb()
  if (strings.some((s) => s.includes(marker))) return true
  const needle = new TextEncoder().encode(marker)
  return bytes.some((b) => {
    outer: for (let i = 0; i + needle.length <= b.length; i++) {
      for (let j = 0; j < needle.length; j++) if (b[i + j] !== needle[j]) continue outer
      return true
    }
    return false
  })
}

const waitFor = async (check: () => boolean, ms = 5000): Promise<void> => {
  const until = performance.now() + ms
  while (!check()) {
    if (performance.now() > until) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 5))
  }
}

const kaiPage = { Y, model, record, crypto, engine, browser, idb, dumpIndexedDb, indexedDbContains, waitFor }
export type KaiPage = typeof kaiPage
Object.assign(globalThis, { kai: kaiPage, kaiReady: true })
