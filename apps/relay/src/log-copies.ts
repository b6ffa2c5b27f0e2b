import * as Y from 'yjs'
import type { WireDoc } from '@kai-sync/engine'
import type { Decoded } from './update-view'

const SIGNATURE_BYTES = 64 // an envelope ends with its Ed25519 signature

// An envelope already in a room's log, inserted again as a new Yjs item
// (same bytes, new id), adds nothing any replica can use, yet the room
// would store it and send it to everyone: one member re-sending one valid
// envelope a thousand times grew a room a thousandfold. An honest engine
// never does this (it appends an envelope once, when it seals it), and an
// envelope sent again by a reconnecting client or a second tab is the same
// Yjs item, which Yjs already ignores. So copies are not refused but
// dropped: the room deletes them in the very transaction that integrates
// them, and what it stores and sends is then a tombstone of a few bytes in
// their place. A client that holds such a copy anyway (one it got before
// this check existed) keeps syncing, and learns of the deletion with its
// next sync. (A peer relay holding one live would refuse that deletion:
// the guard lets log entries go only under a covering snapshot.)

/**
 * The live envelopes of a room's log, by signature. For envelopes that
 * verify this is the same as by envelope hash (SHA-256 over header and
 * signature): two different envelopes cannot carry one valid signature,
 * and the relay checks every envelope before it merges it. The signature
 * is read without decoding, which keeps this cheap per envelope.
 */
export class LogCopies {
  /** Counted: a room stored before this check may hold an envelope twice. */
  private readonly live = new Map<string, number>()

  constructor(private readonly wire: WireDoc) {}

  get size(): number {
    return this.live.size
  }

  /** True if the log holds this envelope live (by its signature). */
  holds(envelope: Uint8Array): boolean {
    return this.live.has(signatureOf(envelope))
  }

  /** After each transaction of the doc (loads included): what it added to the log and deleted from it. */
  track(tr: Y.Transaction, inserted: Uint8Array[]): void {
    for (const bytes of inserted) {
      const key = signatureOf(bytes)
      this.live.set(key, (this.live.get(key) ?? 0) + 1)
    }
    if (tr.deleteSet.clients.size === 0) return
    Y.iterateDeletedStructs(tr, tr.deleteSet, (s) => {
      // Items inserted and deleted in this transaction were never counted.
      if (!this.isLogEntry(s) || s.id.clock >= (tr.beforeState.get(s.id.client) ?? 0)) return
      const key = signatureOf((s.content as Y.ContentBinary).content)
      const n = this.live.get(key) ?? 0
      if (n <= 1) this.live.delete(key)
      else this.live.set(key, n - 1)
    })
  }

  /**
   * Whether a checked update may carry a copy (of the log, or twice the
   * same envelope): then the room merges it with `drop` instead of storing
   * its bytes verbatim. Map items are binary too; one of those repeated
   * only costs the verbatim shortcut, `drop` touches the log alone.
   */
  mayCopy(decoded: Decoded): boolean {
    const store = this.wire.doc.store
    const seen = new Set<string>()
    for (const s of decoded.structs) {
      if (!(s instanceof Y.Item) || !(s.content instanceof Y.ContentBinary)) continue
      if (s.id.clock + s.length <= Y.getState(store, s.id.client)) continue
      const key = signatureOf(s.content.content)
      if (this.live.has(key) || seen.has(key)) return true
      seen.add(key)
    }
    return false
  }

  /** Inside the transaction that merged an update: deletes the log items it added that are copies. */
  drop(tr: Y.Transaction): number {
    const seen = new Set<string>()
    let dropped = 0
    for (const [client, structs] of tr.doc.store.clients) {
      const before = tr.beforeState.get(client) ?? 0
      if (Y.getState(tr.doc.store, client) <= before) continue
      for (let i = Y.findIndexSS(structs, before); i < structs.length; i++) {
        const s = structs[i]!
        if (!this.isLogEntry(s) || s.deleted) continue
        const key = signatureOf((s.content as Y.ContentBinary).content)
        if (this.live.has(key) || seen.has(key)) {
          s.delete(tr)
          dropped++
        } else {
          seen.add(key)
        }
      }
    }
    return dropped
  }

  private isLogEntry(s: Y.AbstractStruct): s is Y.Item {
    return s instanceof Y.Item && s.parent === this.wire.log && s.content instanceof Y.ContentBinary
  }
}

function signatureOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + Math.max(0, bytes.length - SIGNATURE_BYTES), Math.min(bytes.length, SIGNATURE_BYTES)).toString('latin1')
}
