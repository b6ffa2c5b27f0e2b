import * as Y from 'yjs'
import { keysOf } from './map-keys'
import { ObservableV2 } from 'lib0/observable'
import {
  AuditEntrySchema,
  ControlRequestSchema,
  REPLY_ENDINGS,
  type ControlKind,
  type ControlRequest,
  type ReplyEnding,
  MemorySnapshotSchema,
  MessageSchema,
  type AuditEntry,
  type Json,
  type MemorySnapshot,
  type Message,
  type MessageInput,
  type Mode,
} from './schemas'
import { HybridClock } from './hlc'
import { KaiError } from './errors'
import { OrderedIndex } from './ordered-index'
import { ConfigRegister, isValidConfigValue, type ConfigWrite } from './config-register'
import { SessionPolicies } from './session-policies'

/** Origin of every transaction a SessionDoc makes itself. */
export const LOCAL_ORIGIN = Object.freeze({ source: 'local' as const })

export interface SessionMeta {
  session_id: string
  agent_id: string
  user_id: string
  created_at: number
}

/** What one transaction changed, by id; delivered after the transaction. */
export interface SessionChange {
  messages: ReadonlySet<string>
  config: ReadonlySet<string>
  audit: ReadonlySet<string>
  memory: ReadonlySet<string>
  /** Stop and retry requests added (by their id). */
  controls: ReadonlySet<string>
  meta: boolean
  origin: unknown
  local: boolean
}

interface PendingChange {
  messages: Set<string>
  config: Set<string>
  audit: Set<string>
  memory: Set<string>
  controls: Set<string>
  meta: boolean
}

export interface SessionDocEvents {
  change: (change: SessionChange) => void
}

export interface SessionDocOptions {
  /** This device's id: authors messages and breaks clock ties. */
  device: string
  mode: Mode
  /** Wall clock in ms; injectable for tests. */
  now?: () => number
  doc?: Y.Doc
}

/** A message to append: its timestamp defaults to now, its mode to this device's; its author is this device. */
export type NewMessage = Omit<MessageInput, 'timestamp'> & { timestamp?: number }

/**
 * A message is a Y.Map of three entries: `info` (what never changes once
 * appended: role, timestamp, author, mode, metadata) as one value, `status`,
 * and `content`, a Y.Text streamed into. One item for the fixed fields
 * instead of one per field makes a remote append 40% cheaper to integrate.
 */
type MessageInfo = Pick<Message, 'role' | 'timestamp' | 'author' | 'mode' | 'metadata'>

/**
 * How a reply ended, when not `complete`: kept beside `status`, which stays
 * `streaming` or `complete`, so replicas from before these endings existed
 * (whose schema knows only those two) read a stopped or failed reply as a
 * complete one instead of refusing the whole record.
 */
interface MessageOutcome {
  status: ReplyEnding
  error?: { code: string; message: string }
}

/**
 * The plaintext session: a Yjs document with a fixed layout and typed
 * operations. History, audit and memory are Y.Maps keyed by id (so the same
 * entry appended twice shows once and appends cost the same at any size),
 * viewed through an index ordered by (timestamp, id).
 */
export class SessionDoc extends ObservableV2<SessionDocEvents> {
  readonly doc: Y.Doc
  readonly device: string
  readonly mode: Mode
  readonly clock: HybridClock
  private readonly now: () => number
  /** Set while this device may only read: every write then throws `forbidden`. */
  readOnly = false

  private readonly metaMap: Y.Map<Json>
  private readonly history: Y.Map<Y.Map<unknown>>
  private readonly auditMap: Y.Map<AuditEntry>
  private readonly memoryMap: Y.Map<MemorySnapshot>
  private readonly controlMap: Y.Map<ControlRequest>
  /** Control request ids by the message they are about. */
  private readonly controlsByMessage = new Map<string, Set<string>>()
  readonly configRegister: ConfigRegister
  /** Conflict policies, message edits, and the values and conflicts they make visible. */
  readonly policies: SessionPolicies

  private readonly historyIndex = new OrderedIndex()
  private readonly auditIndex = new OrderedIndex()
  private readonly memoryIndex = new OrderedIndex()
  private pending: PendingChange | null = null

  constructor(options: SessionDocOptions) {
    super()
    this.doc = options.doc ?? new Y.Doc()
    this.device = options.device
    this.mode = options.mode
    this.now = options.now ?? Date.now
    this.clock = new HybridClock(options.device, this.now)
    this.metaMap = this.doc.getMap('meta')
    this.history = this.doc.getMap('history')
    this.auditMap = this.doc.getMap('audit')
    this.memoryMap = this.doc.getMap('memory')
    this.controlMap = this.doc.getMap('controls')
    this.configRegister = new ConfigRegister(this.doc.getMap('config'))

    // Index what the doc already holds, then keep the indexes current.
    this.history.forEach((m, id) => this.historyIndex.set(id, infoOf(m).timestamp))
    this.auditMap.forEach((e, id) => this.auditIndex.set(id, e.timestamp))
    this.memoryMap.forEach((s, id) => this.memoryIndex.set(id, s.timestamp))
    this.controlMap.forEach((c, id) => this.indexControl(id, c))
    for (const w of this.configRegister.allWrites()) this.clock.observe(w.hlc)

    this.history.observeDeep(this.onHistory)
    this.auditMap.observe((e) => this.onEntries(e, this.auditMap, this.auditIndex, 'audit'))
    this.memoryMap.observe((e) => this.onEntries(e, this.memoryMap, this.memoryIndex, 'memory'))
    this.controlMap.observe((e) => {
      for (const id of keysOf(e)) {
        const c = this.controlMap.get(id)
        if (c) this.indexControl(id, c)
        this.changes().controls.add(id)
      }
    })
    this.configRegister.map.observe((e) => {
      for (const key of keysOf(e)) {
        const write = this.configRegister.map.get(key)
        if (write) this.clock.observe(write.hlc)
        this.changes().config.add(ConfigRegister.fieldOf(key))
      }
    })
    this.metaMap.observe(() => {
      this.changes().meta = true
    })
    this.doc.on('afterTransaction', this.onAfterTransaction)
    this.policies = new SessionPolicies(this, { now: this.now, touched: (kind, id) => this.changes()[kind].add(id) })
  }

  // --- meta ---------------------------------------------------------------

  /** Sets the session's identity once; later calls with other values throw. */
  init(meta: SessionMeta): void {
    const current = this.metaOrNull()
    if (current) {
      if (current.session_id !== meta.session_id) {
        throw new KaiError('conflict', `this document already holds session ${current.session_id}`)
      }
      return
    }
    this.transact(() => {
      for (const [k, v] of Object.entries(meta)) this.metaMap.set(k, v)
    })
  }

  metaOrNull(): SessionMeta | null {
    const id = this.metaMap.get('session_id')
    if (typeof id !== 'string') return null
    return {
      session_id: id,
      agent_id: String(this.metaMap.get('agent_id') ?? ''),
      user_id: String(this.metaMap.get('user_id') ?? ''),
      created_at: Number(this.metaMap.get('created_at') ?? 0),
    }
  }

  // --- history ------------------------------------------------------------

  /**
   * Appends a message. Appending an id that is already there changes nothing
   * and returns the message as it is.
   */
  appendMessage(input: NewMessage): Message {
    const existing = this.message(input.id)
    if (existing) return existing
    this.assertAuthor(input.author, `message ${input.id}`)
    const message = MessageSchema.parse({
      author: this.device,
      mode: this.mode,
      ...input,
      timestamp: input.timestamp ?? this.now(),
    })
    const info: MessageInfo = { role: message.role, timestamp: message.timestamp }
    if (message.author !== undefined) info.author = message.author
    if (message.mode !== undefined) info.mode = message.mode
    if (message.metadata !== undefined) info.metadata = message.metadata
    this.transact(() => {
      const m = new Y.Map<unknown>()
      m.set('info', info)
      m.set('status', message.status === 'streaming' ? 'streaming' : 'complete')
      if (isEnding(message.status)) m.set('outcome', outcomeOf(message.status, message.error))
      m.set('content', new Y.Text(message.content))
      this.history.set(message.id, m)
    })
    return message
  }

  /** Starts a reply that will be streamed into with `streamText`. */
  startStream(input: Omit<NewMessage, 'content' | 'status'> & { content?: string }): Message {
    return this.appendMessage({ content: '', ...input, status: 'streaming' })
  }

  /** Appends text to a message; concurrent streams into one message merge. */
  streamText(id: string, chunk: string): void {
    const text = this.messageMap(id).get('content') as Y.Text
    this.transact(() => text.insert(text.length, chunk))
  }

  finishStream(id: string): void {
    const m = this.messageMap(id)
    if (m.get('status') !== 'complete') this.transact(() => m.set('status', 'complete'))
  }

  /**
   * Ends a reply otherwise than complete: `stopped` (its text so far is
   * kept), `interrupted` or `error` (with a code and a reason to show).
   * A reply that has ended already keeps its ending.
   */
  endStream(id: string, status: ReplyEnding, error?: { code: string; message: string }): void {
    const m = this.messageMap(id)
    if (m.get('status') === 'complete') return
    this.transact(() => {
      m.set('outcome', outcomeOf(status, error))
      m.set('status', 'complete')
    })
  }

  /** A message as shown: its content under the session's conflict policy. */
  message(id: string): Message | undefined {
    const m = this.history.get(id)
    return m ? this.readMessage(id, m) : undefined
  }

  /** Message ids ordered by (timestamp, id). */
  messageIds(): readonly string[] {
    return this.historyIndex.ids()
  }

  get messageCount(): number {
    return this.historyIndex.size
  }

  messages(): Message[] {
    return this.historyIndex.ids().map((id) => this.readMessage(id, this.history.get(id)!))
  }

  /**
   * The message's text as a live Y.Text, for editors that bind to Yjs: the
   * CRDT merge of its stream and every edit, which is what the `merge`
   * policy shows (`message(id).content` is what the policy in force shows).
   */
  messageText(id: string): Y.Text {
    return this.messageMap(id).get('content') as Y.Text
  }

  // --- config -------------------------------------------------------------

  /** Writes a config field; the write supersedes every write of it seen here. */
  setConfig(field: string, value: Json): ConfigWrite {
    ConfigRegister.assertField(field)
    if (!isValidConfigValue(field, value)) {
      throw new KaiError('invalid_input', `${JSON.stringify(value)?.slice(0, 60)} is not a valid value for config.${field}`)
    }
    const write: ConfigWrite = {
      field,
      value,
      hlc: this.clock.tick(),
      device: this.device,
      mode: this.mode,
      timestamp: this.now(),
    }
    this.transact(() => this.configRegister.write(write))
    return write
  }

  // --- stop and retry requests -------------------------------------------

  /** Asks, as this device, that a reply be stopped or answered again. */
  requestControl(kind: ControlKind, messageId: string, id: string = randomId()): ControlRequest {
    const request = ControlRequestSchema.parse({ id, kind, message_id: messageId, device: this.device, mode: this.mode, timestamp: this.now() })
    if (!this.controlMap.has(id)) this.transact(() => this.controlMap.set(id, request))
    return this.controlMap.get(id)!
  }

  control(id: string): ControlRequest | undefined {
    const c = this.controlMap.get(id)
    return c && ControlRequestSchema.safeParse(c).success ? c : undefined
  }

  /** The well-formed requests about a message, oldest first. */
  controlsFor(messageId: string): ControlRequest[] {
    const ids = this.controlsByMessage.get(messageId)
    if (!ids) return []
    return [...ids]
      .map((id) => this.control(id))
      .filter((c): c is ControlRequest => c !== undefined)
      .sort((a, b) => a.timestamp - b.timestamp || a.id.localeCompare(b.id))
  }

  // --- audit and memory ---------------------------------------------------

  appendAudit(entry: Omit<AuditEntry, 'actor' | 'mode' | 'timestamp'> & Partial<AuditEntry>): AuditEntry {
    this.assertAuthor(entry.actor, `audit entry ${entry.id}`)
    const parsed = AuditEntrySchema.parse({ actor: this.device, mode: this.mode, timestamp: this.now(), ...entry })
    if (!this.auditMap.has(parsed.id)) this.transact(() => this.auditMap.set(parsed.id, parsed))
    return this.auditMap.get(parsed.id)!
  }

  auditEntry(id: string): AuditEntry | undefined {
    return this.auditMap.get(id)
  }

  audit(): AuditEntry[] {
    return this.auditIndex.ids().map((id) => this.auditMap.get(id)!)
  }

  addMemory(snapshot: Omit<MemorySnapshot, 'timestamp'> & Partial<MemorySnapshot>): MemorySnapshot {
    this.assertAuthor(snapshot.author, `memory snapshot ${snapshot.id}`)
    const parsed = MemorySnapshotSchema.parse({ author: this.device, timestamp: this.now(), ...snapshot })
    if (!this.memoryMap.has(parsed.id)) this.transact(() => this.memoryMap.set(parsed.id, parsed))
    return this.memoryMap.get(parsed.id)!
  }

  memory(): MemorySnapshot[] {
    return this.memoryIndex.ids().map((id) => this.memoryMap.get(id)!)
  }

  /** Runs `fn` as one local transaction: one update, one change event. */
  transact(fn: () => void): void {
    if (this.readOnly) throw new KaiError('forbidden', 'this device may only read this session')
    this.doc.transact(fn, LOCAL_ORIGIN)
  }

  override destroy(): void {
    this.policies.destroy()
    this.doc.off('afterTransaction', this.onAfterTransaction)
    super.destroy()
  }

  /**
   * Authorship is the writing device's: every other replica refuses an
   * update that names another device as author or actor (the engine's
   * intake), so writing one would only cut this device's stream short.
   */
  private assertAuthor(named: unknown, what: string): void {
    if (named !== undefined && named !== this.device) {
      throw new KaiError('forged_author', `${what} names ${String(named).slice(0, 60)} as its author, not this device`)
    }
  }

  // --- observers ----------------------------------------------------------

  private readMessage(id: string, m: Y.Map<unknown>): Message {
    return readMessage(id, m, this.policies.content(id, m.get('content') as Y.Text | undefined))
  }

  private messageMap(id: string): Y.Map<unknown> {
    const m = this.history.get(id)
    if (!m) throw new KaiError('not_found', `no message ${id} in this session`)
    return m
  }

  private changes(): PendingChange {
    this.pending ??= { messages: new Set(), config: new Set(), audit: new Set(), memory: new Set(), controls: new Set(), meta: false }
    return this.pending
  }

  private indexControl(id: string, c: ControlRequest): void {
    const messageId = (c as { message_id?: unknown }).message_id
    if (typeof messageId !== 'string') return
    let ids = this.controlsByMessage.get(messageId)
    if (!ids) this.controlsByMessage.set(messageId, (ids = new Set()))
    ids.add(id)
  }

  // Reads only the keys and paths a transaction touched: O(changes), never
  // O(history), which is what keeps remote applies flat at 100k messages.
  private readonly onHistory = (events: Array<Y.YEvent<any>>): void => {
    const changed = this.changes().messages
    for (const event of events) {
      if (event.target === this.history) {
        for (const id of keysOf(event as Y.YMapEvent<unknown>)) {
          const m = this.history.get(id)
          if (m) this.historyIndex.set(id, infoOf(m).timestamp)
          else this.historyIndex.delete(id)
          changed.add(id)
        }
      } else {
        const id = event.path[0]
        if (typeof id === 'string') changed.add(id)
      }
    }
  }

  private onEntries<T extends { timestamp: number }>(
    event: Y.YMapEvent<T>,
    map: Y.Map<T>,
    index: OrderedIndex,
    kind: 'audit' | 'memory',
  ): void {
    const changed = this.changes()[kind]
    for (const id of keysOf(event)) {
      const entry = map.get(id)
      if (entry) index.set(id, entry.timestamp)
      else index.delete(id)
      changed.add(id)
    }
  }

  private readonly onAfterTransaction = (tr: Y.Transaction): void => {
    const pending = this.pending
    if (!pending) return
    this.pending = null
    this.emit('change', [{ ...pending, origin: tr.origin, local: tr.origin === LOCAL_ORIGIN }])
  }
}

function infoOf(m: Y.Map<unknown>): MessageInfo {
  return m.get('info') as MessageInfo
}

function isEnding(status: string): status is ReplyEnding {
  return (REPLY_ENDINGS as readonly string[]).includes(status)
}

function outcomeOf(status: ReplyEnding, error?: { code: string; message: string }): MessageOutcome {
  return error ? { status, error: { code: error.code.slice(0, 60), message: error.message.slice(0, 500) } } : { status }
}

function randomId(): string {
  return globalThis.crypto.randomUUID()
}

function readMessage(id: string, m: Y.Map<unknown>, content: string): Message {
  const { role, timestamp, author, mode, metadata } = infoOf(m)
  const message: Message = { id, role, content, timestamp, status: m.get('status') === 'streaming' ? 'streaming' : 'complete' }
  // Another device wrote these: an outcome this version does not know
  // (a newer one's) shows as `complete` rather than breaking the record.
  const outcome = m.get('outcome') as Partial<MessageOutcome> | undefined
  if (message.status === 'complete' && outcome && typeof outcome.status === 'string' && isEnding(outcome.status)) {
    message.status = outcome.status
    const e = outcome.error
    if (e && typeof e.code === 'string' && typeof e.message === 'string') message.error = { code: e.code.slice(0, 60) || 'error', message: e.message.slice(0, 500) }
  }
  if (author !== undefined) message.author = author
  if (mode !== undefined) message.mode = mode
  if (metadata !== undefined) message.metadata = metadata
  return message
}
