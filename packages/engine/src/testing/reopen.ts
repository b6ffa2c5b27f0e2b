import * as Y from 'yjs'
import { SessionKeyring } from '@kai-sync/crypto'
import type { Mode } from '@kai-sync/model'
import { WireDoc } from '../wire-doc'
import { SyncEngine } from '../sync-engine'
import type { Replica } from './replicas'

/**
 * A reload: a new engine for the replica's device on a copy of its wire
 * doc (what IndexedDB would hand back), with nothing else carried over.
 * The caller destroys it.
 */
export async function reopenReplica(replica: Replica, mode: Mode = 'sidepanel'): Promise<SyncEngine> {
  const copy = new Y.Doc()
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(replica.engine.wire.doc))
  return SyncEngine.open({
    sessionId: replica.engine.sessionId,
    wire: new WireDoc(copy),
    device: replica.device,
    keys: new SessionKeyring([replica.engine.keys.current]),
    mode,
    compactAfter: null,
  })
}
