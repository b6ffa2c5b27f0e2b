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
  /**
   * The values this write superseded, when it is a list or an object: the
   * base the `merge` policy diffs against, so that an element one device
   * removed does not come back because another device edited the list.
   */
  replaced?: Json[]
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
    const superseded = this.keysOf(w.field)
    const replaced = typeof w.value === 'object' && w.value !== null ? superseded.map((k) => this.map.get(k)!.value) : []
    for (const key of superseded) this.map.delete(key)
    // Two contexts of one device (two tabs) share a device id, so their
    // clocks can tick to the same value; the Yjs client id keeps their keys
    // apart, or one concurrent write would silently replace the other.
    const client = this.map.doc?.clientID ?? 0
    this.map.set(`${w.field}#${w.hlc}#${client}`, replaced.length > 0 ? { ...w, replaced } : w)
  }

  /** The writes of `field` that no other write superseded, oldest first (ties by key, the same on every replica). */
  heads(field: string): ConfigWrite[] {
    return this.keysOf(field)
      .map((key) => ({ key, write: this.map.get(key)! }))
      .sort((a, b) => compareHlc(a.write.hlc, b.write.hlc) || compareHlc(a.key, b.key))
      .map((h) => h.write)
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
