import type * as Y from 'yjs'
import { compareHlc } from './hlc'
import { KaiError } from './errors'
import { AgentConfigSchema, type Json, type Mode } from './schemas'

/** One write of one config field. */
export interface ConfigWrite {
  field: string
  value: Json
  /** Hybrid logical clock of the write; unique per write. */
  hlc: string
  device: string
  mode: Mode
  timestamp: number
}

const FIELD = /^[A-Za-z0-9_.-]{1,100}$/
const knownFields = AgentConfigSchema.shape as Record<string, { safeParse(v: unknown): { success: boolean } }>

/** A value is valid for a known AgentConfig field if its schema accepts it; other fields take any JSON. */
export function isValidConfigValue(field: string, value: Json): boolean {
  const schema = knownFields[field]
  return schema ? schema.safeParse(value).success : true
}

/**
 * A multi-value register per config field, kept flat in one Y.Map under
 * `field#hlc` keys. A write deletes every write of its field that its
 * device has seen, so the writes left are exactly those no later write saw:
 * one after sequential edits, several after concurrent ones. Nested Y.Maps
 * per field would not do: two devices creating a field's map at once would
 * drop one map and every write in it.
 */
export class ConfigRegister {
  constructor(readonly map: Y.Map<ConfigWrite>) {}

  static fieldOf(key: string): string {
    const at = key.indexOf('#')
    return at < 0 ? key : key.slice(0, at)
  }

  static assertField(field: string): void {
    if (!FIELD.test(field)) throw new KaiError('invalid_input', `config field names are 1-100 of A-Z a-z 0-9 _ . - (got ${JSON.stringify(field).slice(0, 40)})`)
  }

  /** Call inside a transaction. */
  write(w: ConfigWrite): void {
    ConfigRegister.assertField(w.field)
    for (const key of this.keysOf(w.field)) this.map.delete(key)
    this.map.set(`${w.field}#${w.hlc}`, w)
  }

  /** The writes of `field` that no other write superseded, oldest first. */
  heads(field: string): ConfigWrite[] {
    return this.keysOf(field)
      .map((k) => this.map.get(k)!)
      .sort((a, b) => compareHlc(a.hlc, b.hlc))
  }

  fields(): string[] {
    const fields = new Set<string>()
    for (const key of this.map.keys()) fields.add(ConfigRegister.fieldOf(key))
    return [...fields].sort()
  }

  allWrites(): ConfigWrite[] {
    return [...this.map.values()]
  }

  private keysOf(field: string): string[] {
    const prefix = `${field}#`
    return [...this.map.keys()].filter((k) => k.startsWith(prefix))
  }
}
