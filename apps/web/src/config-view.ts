import { DEFAULT_POLICY, agentConfig, type AgentConfig, type ConfigView, type ConflictPolicy, type SessionDoc } from '@kai-sync/model'

export interface ShownConfig extends ConfigView {
  config: AgentConfig
  /** The policy set on each config field itself (`config.<key>`), if any. */
  own: Record<string, ConflictPolicy>
  /** The session's default policy, for fields with none of their own. */
  fallback: ConflictPolicy
}

/**
 * The config as the session's conflict policies show it (the same model
 * functions the daemon answers with): under `manual` and `user_choice` the
 * concurrent values are reported as conflicts until one is kept.
 */
export function configViewOf(doc: SessionDoc): ShownConfig {
  const view = doc.policies.configView()
  const own: Record<string, ConflictPolicy> = {}
  for (const [target, policy] of Object.entries(doc.policies.settings())) if (target.startsWith('config.')) own[target.slice('config.'.length)] = policy
  return { ...view, config: agentConfig(view), own, fallback: doc.policies.setting('default') ?? DEFAULT_POLICY }
}
