import { ObservableV2 } from 'lib0/observable'
import { utf8, type SessionKeyring } from '@kai-sync/crypto'
import { STORES, committed, request, type DeviceDb } from './device-db'

/** What the session list shows of a session, without opening it. */
export interface CatalogEntry {
  sessionId: string
  createdAt: number
  /** When a context of this device last opened or changed it: the list's order. */
  touchedAt: number
  /** The title, sealed under the session key: the list holds no plaintext at rest either. */
  title?: { epoch: number; iv: Uint8Array; ciphertext: Uint8Array }
}

export interface SessionCatalogEvents {
  /** The list changed, here or in another context of this origin. */
  change: () => void
}

const CHANNEL = 'kai-sync/catalog'
const decoder = new TextDecoder()

function titleData(sessionId: string): Uint8Array {
  return utf8(`kai-sync/title/v1\0${sessionId}`)
}

/** The sessions this device holds, most recently touched first; live across contexts. */
export class SessionCatalog extends ObservableV2<SessionCatalogEvents> {
  private readonly channel = new BroadcastChannel(CHANNEL)

  constructor(private readonly db: DeviceDb) {
    super()
    this.channel.onmessage = () => this.emit('change', [])
  }

  async list(): Promise<CatalogEntry[]> {
    const tx = this.db.transaction(STORES.catalog, 'readonly')
    const all = (await request(tx.objectStore(STORES.catalog).getAll())) as CatalogEntry[]
    return all.sort((a, b) => b.touchedAt - a.touchedAt || a.sessionId.localeCompare(b.sessionId))
  }

  async get(sessionId: string): Promise<CatalogEntry | undefined> {
    const tx = this.db.transaction(STORES.catalog, 'readonly')
    return (await request(tx.objectStore(STORES.catalog).get(sessionId))) as CatalogEntry | undefined
  }

  /** Adds a session or marks it touched; `title` (already sealed) replaces the old one. */
  async touch(sessionId: string, fields: { createdAt?: number; title?: CatalogEntry['title'] } = {}): Promise<void> {
    const tx = this.db.transaction(STORES.catalog, 'readwrite')
    const store = tx.objectStore(STORES.catalog)
    const current = (await request(store.get(sessionId))) as CatalogEntry | undefined
    const entry: CatalogEntry = {
      sessionId,
      createdAt: fields.createdAt ?? current?.createdAt ?? Date.now(),
      touchedAt: Date.now(),
    }
    const title = fields.title ?? current?.title
    if (title) entry.title = title
    store.put(entry, sessionId)
    await committed(tx)
    this.changed()
  }

  async remove(sessionId: string): Promise<void> {
    const tx = this.db.transaction(STORES.catalog, 'readwrite')
    tx.objectStore(STORES.catalog).delete(sessionId)
    await committed(tx)
    this.changed()
  }

  /** Seals a title for `touch`. */
  static async sealTitle(sessionId: string, keys: SessionKeyring, title: string): Promise<NonNullable<CatalogEntry['title']>> {
    const key = keys.current
    const { iv, ciphertext } = await key.encrypt(utf8(title), titleData(sessionId))
    return { epoch: key.epoch, iv, ciphertext }
  }

  /** The entry's title, or null if it has none or this device lacks its key. */
  static async openTitle(entry: CatalogEntry, keys: SessionKeyring): Promise<string | null> {
    const sealed = entry.title
    const key = sealed && keys.get(sealed.epoch)
    if (!sealed || !key) return null
    try {
      return decoder.decode(await key.decrypt(sealed.iv, sealed.ciphertext, titleData(entry.sessionId)))
    } catch {
      return null
    }
  }

  override destroy(): void {
    this.channel.close()
    super.destroy()
  }

  private changed(): void {
    this.channel.postMessage('change')
    this.emit('change', [])
  }
}
