import { AgentConfigSchema, DEFAULT_CONFIG, type AgentConfig, type Json } from './schemas'
import type { ConflictInfo } from './exchange-schemas'
import { isValidConfigValue, type ConfigRegister } from './config-register'

// The config as a person sees it, from the merged register. Its own module
// so the policies (session-policies.ts) and the record (record.ts) both use
// it without importing each other.

/** What a person sees of the config, and the conflicts still open in it. */
export interface ConfigView {
  values: Record<string, Json>
  conflicts: ConflictInfo[]
}

/**
 * Turns the merged register into what is shown. Must be a pure function of
 * the register so every replica shows the same. Records use the session's
 * conflict policies (`doc.policies`) unless a resolver is passed.
 */
export type ConfigResolver = (register: ConfigRegister) => ConfigView

/** Shows the latest write of every field and reports nothing: the `timestamp` policy on every key. */
export const latestWriteWins: ConfigResolver = (register) => {
  const values: Record<string, Json> = {}
  for (const field of register.fields()) {
    const heads = register.heads(field)
    values[field] = heads[heads.length - 1]!.value
  }
  return { values, conflicts: [] }
}

/** The visible config: defaults, overlaid with every valid visible value. */
export function agentConfig(view: ConfigView): AgentConfig {
  const config: Record<string, Json> = { ...DEFAULT_CONFIG }
  for (const [field, value] of Object.entries(view.values)) {
    // A value another device wrote that breaks the schema is not shown,
    // rather than making the whole record invalid.
    if (isValidConfigValue(field, value)) config[field] = value
  }
  return AgentConfigSchema.parse(config)
}
