import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { docContainsUpdate } from './contains-update'

// docContainsUpdate answers what Y.snapshotContainsUpdate does (the
// reference), in O(update): checked on each kind of case, both ways.

function writer(client: number): Y.Doc {
  const doc = new Y.Doc()
  doc.clientID = client
  return doc
}

function changeOf(doc: Y.Doc, change: () => void): Uint8Array {
  const before = Y.encodeStateVector(doc)
  change()
  return Y.encodeStateAsUpdate(doc, before)
}

function both(doc: Y.Doc, update: Uint8Array): [boolean, boolean] {
  return [docContainsUpdate(doc, update), Y.snapshotContainsUpdate(Y.snapshot(doc), update)]
}

describe('docContainsUpdate', () => {
  it('agrees with Y.snapshotContainsUpdate on inserts held, inserts missing, deletions held and deletions missing', async () => {
    const a = writer(1)
    const text = a.getText('t')
    const inserted = changeOf(a, () => text.insert(0, 'hello'))
    const more = changeOf(a, () => text.insert(5, ' world'))
    const deletion = changeOf(a, () => text.delete(0, 2))

    const replica = writer(2)
    expect(both(replica, inserted)).toEqual([false, false])
    Y.applyUpdate(replica, inserted)
    expect(both(replica, inserted)).toEqual([true, true])
    expect(both(replica, more)).toEqual([false, false])
    Y.applyUpdate(replica, more)
    // The deletion names structs the replica has, not yet deleted.
    expect(both(replica, deletion)).toEqual([false, false])
    Y.applyUpdate(replica, deletion)
    expect(both(replica, deletion)).toEqual([true, true])
    expect(both(replica, Y.encodeStateAsUpdate(a))).toEqual([true, true])
  })

  it('says false for bytes that are not an update', () => {
    expect(docContainsUpdate(new Y.Doc(), new Uint8Array([9, 9, 9]))).toBe(false)
  })
})
