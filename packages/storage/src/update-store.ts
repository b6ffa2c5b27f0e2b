// Where wire docs live at rest: per room, a bag of Yjs updates. Yjs updates
// commute and are idempotent, so a store keeps no order and no merge logic;
// it only has to keep every update it acknowledged, and to swap a set of
// updates for one merged update without losing any.

/** Identifies one stored update within its room; opaque to callers. */
export type UpdateKey = string & { readonly __updateKey: true }

export interface StoredUpdate {
  key: UpdateKey
  update: Uint8Array
}

export interface UpdateStore {
  /** Every update stored for the room; an unknown room has none. */
  load(room: string): Promise<StoredUpdate[]>
  /**
   * Stores an update; resolves once it survives the process being killed.
   * Updates appended at the same time may come back with the same key: the
   * key then names all of them.
   */
  append(room: string, update: Uint8Array): Promise<UpdateKey>
  /**
   * Stores `merged` and removes the updates with these keys, never losing
   * one: either in one atomic step, or `merged` first (a crash between then
   * leaves both, which loading merges). Callers merge everything they loaded
   * or appended under these keys, so an update another process added
   * meanwhile is never lost. `onStored` runs once `merged` is stored and
   * before the replaced updates are removed, in a store that does it in two
   * steps (a test kills the process there); an atomic store never calls it.
   */
  replace(room: string, keys: readonly UpdateKey[], merged: Uint8Array, options?: { onStored?: () => void }): Promise<UpdateKey>
  /** Every room that has at least one update. */
  rooms(): Promise<string[]>
  /** Removes every update of the room (a device leaving a session); an unknown room is a no-op. */
  deleteRoom(room: string): Promise<void>
  close(): Promise<void>
}
