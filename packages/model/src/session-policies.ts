import type * as Y from 'yjs'
import { keysOf } from './map-keys'
import { ObservableV2 } from 'lib0/observable'
import { ConfigRegister, isValidConfigValue, type ConfigWrite } from './config-register'
import { MessageEditRegister, type MessageEdit } from './edit-register'
import {
  DEFAULT_POLICY,
  asPolicy,
  assertPolicyTarget,
  configField,
  conflictKey,
  messageField,
  parseField,
  policyTargetOf,
  resolveHeads,
  type PolicyField,
  type PolicyTarget,
  type Resolution,
} from './conflict-policy'
import { mergeConcurrent } from './json-merge'
import { replaceText } from './text-diff'
import { KaiError, toKaiError } from './errors'
import { agentConfig, type ConfigView } from './config-view'
import { ConflictPolicySchema, type Mode, type AgentConfig, type ConflictPolicy, type Json } from './schemas'
import type { ConflictInfo } from './exchange-schemas'
import type { HybridClock } from './hlc'

/**
 * Asked which value of a `user_choice` conflict to keep (the UI shows a
 * dialog). Resolve with the value to write, or undefined to leave the
 * conflict open. `signal` aborts when the conflict closes or changes
 * elsewhere first: close the dialog then; a late answer is ignored.
 */
export type UserChoice = (conflict: ConflictInfo, context: { signal: AbortSignal }) => Promise<Json | undefined>

export interface SessionPoliciesEvents {
  /** The open conflicts changed (one opened, closed or gained a value); all of them, ordered by field. */
  conflicts: (open: ConflictInfo[]) => void
  /** A policy setting changed, here or on another device; every setting now in force. */
  policies: (settings: Record<string, ConflictPolicy>) => void
  /** The user-choice callback failed, or its answer could not be written; the conflict stays open. */
  error: (error: KaiError, conflict: ConflictInfo) => void
}

export interface SessionPoliciesOptions {
  now: () => number
  /** Marks what a remote edit or policy change made visible, for the session's change event. */
  touched: (kind: 'messages' | 'config', id: string) => void
}

/**
 * What the policies use of their session doc. `SessionDoc` is one; naming
 * only this keeps session-doc.ts (which makes the policies) and this module
 * from importing each other.
 */
export interface PolicySession {
  readonly doc: Y.Doc
  readonly device: string
  readonly mode: Mode
  readonly clock: HybridClock
  readonly configRegister: ConfigRegister
  readonly readOnly: boolean
  transact(fn: () => void): void
  setConfig(field: string, value: Json): ConfigWrite
}

/**
 * The conflict policies of one session and what they make visible. The
 * settings live in the session doc (a `policies` register, concurrent
 * settings resolved by latest clock), message edits in a flat `edits`
 * register; every value shown and every conflict reported is computed from
 * the merged doc alone, so replicas agree whatever order updates came in.
 */
export class SessionPolicies extends ObservableV2<SessionPoliciesEvents> {
  /** Policy settings: field `default`, `message.content` or `config.<key>`, value a policy or null (cleared). */
  readonly settingsRegister: ConfigRegister
  readonly edits: MessageEditRegister
  private readonly history: Y.Map<Y.Map<unknown>>
  private settingsCache: Map<string, ConflictPolicy | null> | null = null
  private dirty = false
  private policiesChanged = false
  private openJson: string
  private chooser: UserChoice | null = null
  /** Conflicts already put to the chooser (by conflictKey), and the asks still running. */
  private readonly asked = new Set<string>()
  private readonly asking = new Map<string, AbortController>()
  private readonly inFlight = new Set<Promise<void>>()
  private destroyed = false

  constructor(
    private readonly session: PolicySession,
    private readonly options: SessionPoliciesOptions,
  ) {
    super()
    const doc = session.doc
    this.settingsRegister = new ConfigRegister(doc.getMap('policies'))
    this.edits = new MessageEditRegister(doc.getMap('edits'))
    this.history = doc.getMap('history')
    for (const w of this.settingsRegister.allWrites()) session.clock.observe(w.hlc)
    for (const e of this.edits.all()) session.clock.observe(e.hlc)
    this.settingsRegister.map.observe(this.onSettings)
    this.edits.map.observe(this.onEdits)
    this.history.observe(this.onHistory)
    session.configRegister.map.observe(this.onConfig)
    doc.on('afterTransaction', this.onAfterTransaction)
    this.openJson = JSON.stringify(this.conflicts())
  }

  // --- settings ---------------------------------------------------------------

  /** Sets the policy of a target; null clears it, so the target falls back to the default. */
  setPolicy(target: PolicyTarget, policy: ConflictPolicy | null): void {
    assertPolicyTarget(target)
    if (policy !== null && !ConflictPolicySchema.safeParse(policy).success) {
      throw new KaiError('invalid_input', `${JSON.stringify(policy)?.slice(0, 40)} is not a policy: use merge, timestamp, manual or user_choice`)
    }
    const write: ConfigWrite = { field: target, value: policy, hlc: this.session.clock.tick(), device: this.session.device, mode: this.session.mode, timestamp: this.options.now() }
    this.session.transact(() => this.settingsRegister.write(write))
    this.settingsCache = null
  }

  /** The policy set on `target` itself, or null when it falls back. */
  setting(target: PolicyTarget): ConflictPolicy | null {
    this.settingsCache ??= new Map()
    if (!this.settingsCache.has(target)) {
      // Policies are not themselves under policy: the latest setting wins.
      const heads = this.settingsRegister.heads(target).filter((w) => w.value === null || asPolicy(w.value) !== null)
      this.settingsCache.set(target, asPolicy(heads[heads.length - 1]?.value))
    }
    return this.settingsCache.get(target)!
  }

  /** Every target with a policy set. */
  settings(): Record<string, ConflictPolicy> {
    const out: Record<string, ConflictPolicy> = {}
    for (const target of this.settingsRegister.fields()) {
      const policy = this.setting(target as PolicyTarget)
      if (policy) out[target] = policy
    }
    return out
  }

  /** The policy that governs a field (`config.<key>` or `message.<id>.content`): its own, else the default. */
  policyOf(field: string | PolicyField): ConflictPolicy {
    const target = policyTargetOf(typeof field === 'string' ? parseField(field) : field)
    return this.setting(target) ?? this.setting('default') ?? DEFAULT_POLICY
  }

  // --- visible values -----------------------------------------------------------

  /** The config as shown under its policies, and the config conflicts open. */
  configView(): ConfigView {
    const values: Record<string, Json> = {}
    const conflicts: ConflictInfo[] = []
    for (const key of this.session.configRegister.fields()) {
      const r = this.resolveConfig(key)
      if (!r) continue
      values[key] = r.visible
      if (r.conflict) conflicts.push(r.conflict)
    }
    return { values, conflicts }
  }

  config(): AgentConfig {
    return agentConfig(this.configView())
  }

  /**
   * A message's content as shown: under `merge`, the CRDT text (streamed
   * tokens and every edit merged character by character); under the other
   * policies, the edit register's pick once the message has been edited.
   */
  content(id: string, text: Y.Text | undefined): string {
    const raw = text?.toString() ?? ''
    if (!this.edits.isEdited(id) || this.policyOf({ kind: 'message', id }) === 'merge') return raw
    const heads = this.edits.heads(id)
    return heads[heads.length - 1]?.value ?? raw
  }

  // --- edits --------------------------------------------------------------------

  /**
   * Replaces a message's content. The edit is a register write (what
   * `timestamp`, `manual` and `user_choice` choose among) and the same
   * change applied to the message's CRDT text (what `merge` shows), so the
   * session can change policy later and still show every edit. Returns the
   * edit, or null when the message already shows `content` uncontested.
   */
  editMessage(id: string, content: string): MessageEdit | null {
    if (typeof content !== 'string') throw new KaiError('invalid_input', `the content of message ${id} must be a string`)
    const m = this.history.get(id)
    if (!m) throw new KaiError('not_found', `no message ${id} in this session`)
    if (m.get('status') === 'streaming') throw new KaiError('conflict', `message ${id} is still streaming: finish the stream before editing it`)
    const text = m.get('content') as Y.Text
    if (this.edits.heads(id).length <= 1 && this.content(id, text) === content) return null
    const edit: MessageEdit = { message: id, value: content, hlc: this.session.clock.tick(), device: this.session.device, mode: this.session.mode, timestamp: this.options.now() }
    this.session.transact(() => {
      this.edits.write(edit)
      replaceText(text, content)
    })
    return edit
  }

  // --- conflicts ----------------------------------------------------------------

  /** Every open conflict, ordered by field. */
  conflicts(): ConflictInfo[] {
    return [...this.configView().conflicts, ...this.messageConflicts()]
  }

  /** The open conflicts on message contents, ordered by field. */
  messageConflicts(): ConflictInfo[] {
    const out: ConflictInfo[] = []
    for (const id of this.edits.contested()) {
      const conflict = this.resolveMessage(id)?.conflict
      if (conflict) out.push(conflict)
    }
    return out.sort((a, b) => (a.field < b.field ? -1 : a.field > b.field ? 1 : 0))
  }

  /** The open conflict on a field, if any. */
  conflict(field: string): ConflictInfo | undefined {
    const parsed = parseField(field)
    return (parsed.kind === 'config' ? this.resolveConfig(parsed.key) : this.resolveMessage(parsed.id))?.conflict ?? undefined
  }

  /**
   * Resolves an open conflict by writing `value` (one of the conflicting
   * values or a new one): a write that has seen every conflicting write, so
   * it replaces them all on every replica. Any other write made after
   * seeing the conflict resolves it the same way.
   */
  resolveConflict(field: string, value: Json): void {
    const parsed = parseField(field)
    if (!this.conflict(field)) throw new KaiError('not_found', `no open conflict on ${field}: it was resolved already, or its writes were not concurrent`)
    if (parsed.kind === 'config') this.session.setConfig(parsed.key, value)
    else if (typeof value === 'string') this.editMessage(parsed.id, value)
    else throw new KaiError('invalid_input', `${field} takes a string`)
  }

  /**
   * Sets the callback asked about every `user_choice` conflict this replica
   * sees open (each conflict once, while it stays the same); null stops
   * asking. A read-only replica is never asked, as it could not write.
   */
  setUserChoice(chooser: UserChoice | null): void {
    this.chooser = chooser
    for (const key of this.asked) if (!this.asking.has(key)) this.asked.delete(key)
    this.askAbout(this.conflicts())
  }

  /** Resolves once every answer the callback has been asked for has been handled. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight)
  }

  /** The latest time of any edit or setting, for the record's `updated_at`. */
  latestTimestamp(): number {
    let latest = 0
    for (const e of this.edits.all()) latest = Math.max(latest, e.timestamp)
    for (const w of this.settingsRegister.allWrites()) latest = Math.max(latest, w.timestamp)
    return latest
  }

  override destroy(): void {
    this.destroyed = true
    for (const controller of this.asking.values()) controller.abort()
    this.settingsRegister.map.unobserve(this.onSettings)
    this.edits.map.unobserve(this.onEdits)
    this.history.unobserve(this.onHistory)
    this.session.configRegister.map.unobserve(this.onConfig)
    this.session.doc.off('afterTransaction', this.onAfterTransaction)
    super.destroy()
  }

  // --- internals ------------------------------------------------------------------

  private resolveConfig(key: string): Resolution | null {
    // A value another device wrote that breaks the schema is not a candidate.
    const heads = this.session.configRegister.heads(key).filter((w) => isValidConfigValue(key, w.value))
    if (heads.length === 0) return null
    const field = configField(key)
    return resolveHeads(field, this.policyOf({ kind: 'config', key }), heads, mergeConcurrent)
  }

  private resolveMessage(id: string): Resolution | null {
    const m = this.history.get(id)
    const heads = this.edits.heads(id)
    // Edits can arrive before the message they edit; they wait for it.
    if (!m || heads.length === 0) return null
    return resolveHeads(messageField(id), this.policyOf({ kind: 'message', id }), heads, () => (m.get('content') as Y.Text).toString())
  }

  private askAbout(open: ConflictInfo[]): void {
    const live = new Set(open.map(conflictKey))
    for (const [key, controller] of this.asking) if (!live.has(key)) controller.abort()
    for (const key of this.asked) if (!live.has(key)) this.asked.delete(key)
    const chooser = this.chooser
    if (!chooser || this.session.readOnly || this.destroyed) return
    for (const c of open) {
      const key = conflictKey(c)
      if (c.policy !== 'user_choice' || this.asked.has(key)) continue
      this.asked.add(key)
      this.track(this.ask(chooser, c, key))
    }
  }

  private async ask(chooser: UserChoice, c: ConflictInfo, key: string): Promise<void> {
    const controller = new AbortController()
    this.asking.set(key, controller)
    let answer: Json | undefined
    try {
      // Never call the application from inside a Yjs transaction's events.
      await Promise.resolve()
      answer = await chooser(c, { signal: controller.signal })
    } catch (e) {
      if (!controller.signal.aborted) this.emit('error', [toKaiError(e), c])
      return
    } finally {
      this.asking.delete(key)
    }
    if (answer === undefined || controller.signal.aborted || this.destroyed) return
    // The conflict may have changed (a third write) or closed meanwhile.
    const current = this.conflict(c.field)
    if (!current || conflictKey(current) !== key) return
    try {
      this.resolveConflict(c.field, answer)
    } catch (e) {
      this.emit('error', [toKaiError(e), c])
    }
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p)
    void p.finally(() => this.inFlight.delete(p))
  }

  private readonly onSettings = (event: Y.YMapEvent<ConfigWrite>): void => {
    for (const key of keysOf(event)) {
      const w = this.settingsRegister.map.get(key)
      if (w) this.session.clock.observe(w.hlc)
    }
    this.settingsCache = null
    this.dirty = this.policiesChanged = true
    // A policy can change what every edited message and config field shows.
    for (const key of this.session.configRegister.fields()) this.options.touched('config', key)
    for (const id of this.edits.edited()) this.options.touched('messages', id)
  }

  private readonly onEdits = (event: Y.YMapEvent<MessageEdit>): void => {
    for (const id of this.edits.track(...keysOf(event))) this.options.touched('messages', id)
    for (const key of keysOf(event)) {
      const e = this.edits.map.get(key)
      if (e) this.session.clock.observe(e.hlc)
    }
    this.dirty = true
  }

  private readonly onHistory = (event: Y.YMapEvent<Y.Map<unknown>>): void => {
    for (const id of keysOf(event)) if (this.edits.isEdited(id)) this.dirty = true
  }

  private readonly onConfig = (): void => {
    this.dirty = true
  }

  private readonly onAfterTransaction = (): void => {
    if (!this.dirty) return
    this.dirty = false
    const open = this.conflicts()
    const json = JSON.stringify(open)
    if (this.policiesChanged) {
      this.policiesChanged = false
      this.emit('policies', [this.settings()])
    }
    if (json !== this.openJson) {
      this.openJson = json
      this.emit('conflicts', [open])
    }
    this.askAbout(open)
  }
}
