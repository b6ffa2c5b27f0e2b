// Where wire docs live at rest: per room, a bag of Yjs updates. Yjs updates
// commute and are idempotent, so a store keeps no order and no merge logic;
// it only has to keep every update it acknowledged, and to swap a set of
// updates for one merged update atomically.

/** Identifies one stored update within its room; opaque to callers. */
export type UpdateKey = string & { readonly __updateKey: true }

export interface StoredUpdate {
  key: UpdateKey
  update: Uint8Array
}

export interface UpdateStore {
  /** Every update stored for the room; an unknown room has none. */
  load(room: string): Promise<StoredUpdate[]>
  /** Stores an update; resolves once it survives the process being killed. */
  append(room: string, update: Uint8Array): Promise<UpdateKey>
  /**
   * Removes the updates with these keys and stores `merged` in one atomic
   * step. Callers merge exactly what they loaded or appended, so an update
   * another process added meanwhile is never lost.
   */
  replace(room: string, keys: readonly UpdateKey[], merged: Uint8Array): Promise<UpdateKey>
  /** Every room that has at least one update. */
  rooms(): Promise<string[]>
  close(): Promise<void>
}
