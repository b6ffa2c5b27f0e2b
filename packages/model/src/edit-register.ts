import type * as Y from 'yjs'
import { compareHlc } from './hlc'
import type { Mode } from './schemas'

/** One edit of one message's content: the whole new text. */
export interface MessageEdit {
  message: string
  value: string
  /** Hybrid logical clock of the edit. */
  hlc: string
  device: string
  mode: Mode
  timestamp: number
}

/**
 * A multi-value register of message contents, kept flat in one Y.Map keyed
 * by `hlc#client` (one Y.Map per message would lose a device's edits when
 * two devices created that map at once). An edit deletes every edit of its
 * message its device has seen, so the edits left are the concurrent heads.
 * An in-memory index by message keeps every operation O(edits of that
 * message), whatever the size of the history.
 */
export class MessageEditRegister {
  private readonly byMessage = new Map<string, Set<string>>()
  private readonly messageOfKey = new Map<string, string>()
  /** Messages with more than one head: the only ones that can be in conflict. */
  private readonly contestedIds = new Set<string>()

  constructor(readonly map: Y.Map<MessageEdit>) {
    for (const key of map.keys()) this.track(key)
  }

  /** Call inside a transaction. */
  write(edit: MessageEdit): void {
    for (const key of this.byMessage.get(edit.message) ?? []) this.map.delete(key)
    const key = `${edit.hlc}#${this.map.doc?.clientID ?? 0}`
    this.map.set(key, edit)
    // Index now: a second edit in the same transaction must see this one.
    this.track(...this.byMessage.get(edit.message) ?? [], key)
  }

  /**
   * Brings the index up to date for keys that changed (from the map's
   * observer, remote or local); returns the messages they belong to.
   */
  track(...keys: string[]): Set<string> {
    const touched = new Set<string>()
    for (const key of keys) {
      const edit = this.map.get(key)
      const id = isEdit(edit) ? edit.message : this.messageOfKey.get(key)
      if (id === undefined) continue
      touched.add(id)
      let keysOfId = this.byMessage.get(id)
      if (isEdit(edit)) {
        if (!keysOfId) this.byMessage.set(id, (keysOfId = new Set()))
        keysOfId.add(key)
        this.messageOfKey.set(key, id)
      } else {
        keysOfId?.delete(key)
        this.messageOfKey.delete(key)
      }
      const heads = keysOfId?.size ?? 0
      if (heads === 0) this.byMessage.delete(id)
      if (heads > 1) this.contestedIds.add(id)
      else this.contestedIds.delete(id)
    }
    return touched
  }

  /** The edits of `message` no other edit superseded, oldest first (ties by key). */
  heads(message: string): MessageEdit[] {
    const keys = [...(this.byMessage.get(message) ?? [])]
    return keys
      .map((key) => ({ key, edit: this.map.get(key)! }))
      .sort((a, b) => compareHlc(a.edit.hlc, b.edit.hlc) || compareHlc(a.key, b.key))
      .map((h) => h.edit)
  }

  isEdited(message: string): boolean {
    return this.byMessage.has(message)
  }

  /** Ids of messages with at least one edit. */
  edited(): IterableIterator<string> {
    return this.byMessage.keys()
  }

  /** Ids of messages with concurrent edits. */
  contested(): ReadonlySet<string> {
    return this.contestedIds
  }

  all(): MessageEdit[] {
    return [...this.map.values()].filter(isEdit)
  }
}

// Another device's bytes are checked before they are trusted as an edit.
function isEdit(v: unknown): v is MessageEdit {
  if (typeof v !== 'object' || v === null) return false
  const e = v as Record<string, unknown>
  return typeof e.message === 'string' && typeof e.value === 'string' && typeof e.hlc === 'string' && typeof e.device === 'string' && typeof e.timestamp === 'number'
}
