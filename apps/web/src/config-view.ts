import { agentConfig, latestWriteWins, type ConfigResolver, type ConfigView, type SessionDoc } from '@kai-sync/model'

/**
 * Turns the merged config register into what is shown. The conflict
 * policies (merge, timestamp, manual, user_choice; being built) replace
 * this resolver; the `user_choice` conflicts they report then open the
 * ConflictDialog, whose choice is written as a new value superseding both.
 */
export const configResolver: ConfigResolver = latestWriteWins

export function configViewOf(doc: SessionDoc): ConfigView & { config: ReturnType<typeof agentConfig> } {
  const view = configResolver(doc.configRegister)
  return { ...view, config: agentConfig(view) }
}
