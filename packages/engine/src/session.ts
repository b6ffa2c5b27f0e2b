
import { SessionKey, SessionKeyring, createGenesis } from '@kai-sync/crypto'
import { WireDoc } from './wire-doc'
import { SyncEngine, type SyncEngineOptions } from './sync-engine'

export interface CreateSessionOptions extends Omit<SyncEngineOptions, 'sessionId' | 'wire' | 'keys'> {
  agentId: string
  userId: string
  /** How people will recognise this device in the roster. */
  label?: string
  wire?: WireDoc
  /** The epoch-0 key; generated (extractable, so it can be handed off) when omitted. */
  key?: SessionKey
}

/**
 * Starts a new session owned by `device`: a genesis roster entry (which
 * fixes the session id), an epoch-0 key, and the session's identity.
 */
export async function createSession(options: CreateSessionOptions): Promise<SyncEngine> {
  const { agentId, userId, label, wire = new WireDoc(), key, ...engineOptions } = options
  const now = engineOptions.now ?? Date.now
  const genesis = await createGenesis(options.device, label ?? options.mode, now(), options.box?.publicKey)
  wire.addRosterEntries([genesis.bytes], null)
  const keys = new SessionKeyring([key ?? (await SessionKey.generate(0, { extractable: true }))])
  const engine = await SyncEngine.open({ ...engineOptions, sessionId: genesis.sessionId, wire, keys })
  engine.session.init({ session_id: genesis.sessionId, agent_id: agentId, user_id: userId, created_at: now() })
  return engine
}

/** Opens an existing session from its wire doc (possibly still empty, to be filled by a transport). */
export function openSession(options: SyncEngineOptions): Promise<SyncEngine> {
  return SyncEngine.open(options)
}

