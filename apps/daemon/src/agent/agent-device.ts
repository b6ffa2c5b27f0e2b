import { AGENT_TURN_ACTION, announceAgent, streamReply } from '@kai-sync/agent'
import { KaiError, agentConfig, type Message, type SessionChange } from '@kai-sync/model'
import type OpenAI from 'openai'
import type { HostedSession } from '../hosted-session'
import type { Logger } from '../log'
import { chatMessages, openAiClient, openAiSource, type ModelEndpoint } from './openai-source'

// The agent device: this daemon's device answering, in every session it
// holds as a writer, each new user message with a reply streamed from the
// model. One turn at a time per session. Its replies are its own (author:
// this device; metadata.agent names it), so only it ends them; others ask
// through stop and retry requests in the session's `controls`.

export interface AgentOptions extends ModelEndpoint {
  /** The model when the session's config names none (--model, KAI_AGENT_MODEL). */
  model?: string
  /** How the agent names itself on its replies (`metadata.agent`). */
  name: string
}

const RETRYABLE = new Set<Message['status']>(['stopped', 'interrupted', 'error'])

export class AgentDevice {
  private readonly client: OpenAI
  private readonly attached = new Set<string>()

  constructor(
    private readonly options: AgentOptions,
    private readonly log: Logger,
  ) {
    this.client = openAiClient(options)
  }

  /** Starts answering in a session, once this device holds its key. */
  attach(hosted: HostedSession): void {
    if (this.attached.has(hosted.id)) return
    this.attached.add(hosted.id)
    if (hosted.ready) return this.start(hosted)
    const onReady = () => {
      if (!hosted.ready) return
      hosted.engine.session.off('change', onReady)
      hosted.off('status', onReady)
      this.start(hosted)
    }
    hosted.engine.session.on('change', onReady)
    hosted.on('status', onReady)
  }

  private start(hosted: HostedSession): void {
    const doc = hosted.engine.session
    const answered = new Set<string>()
    const retried = new Set<string>()
    let queue: Promise<void> = Promise.resolve()
    const enqueue = (what: string, turn: () => Promise<void>) => {
      queue = queue.then(turn).catch((e: unknown) => this.log.error('agent turn failed', { session: hosted.id, what, error: (e as Error).message }))
    }
    const note = (m: Message) => {
      const replyTo = m.metadata?.reply_to
      if (typeof replyTo === 'string') answered.add(replyTo)
      const retryOf = m.metadata?.retry_of
      if (typeof retryOf === 'string') retried.add(retryOf)
    }
    const messages = doc.messages()
    messages.forEach(note)
    if (hosted.engine.canWrite) this.markInterrupted(hosted, messages)
    // Said in the session before any reply, so a page leaves the answering to this device (no demo agent) and names it.
    // A device just enrolled may get the key before the roster says it writes: announce once it may.
    let announced = false
    const announce = () => {
      if (announced || !hosted.engine.canWrite) return
      announced = true
      hosted.engine.roster.off('change', announce)
      const entry = announceAgent(doc, { agent: this.options.name, model: this.options.model })
      // Stored before any turn of the queue runs.
      enqueue('announce', async () => {
        await hosted.settle()
        this.log.info('agent announced in session', { session: hosted.id, entry: entry.id })
      })
    }
    hosted.engine.roster.on('change', announce)
    announce()
    // On start it answers only the latest message if nobody has: not a whole history it joined late.
    const last = messages.at(-1)
    if (last?.role === 'user' && !answered.has(last.id)) {
      answered.add(last.id)
      enqueue('answer', () => this.answer(hosted, last.id))
    }
    doc.on('change', (change: SessionChange) => {
      for (const id of change.messages) {
        const m = doc.message(id)
        if (!m) continue
        note(m)
        if (m.role === 'user' && !answered.has(id) && hosted.engine.canWrite) {
          answered.add(id)
          enqueue('answer', () => this.answer(hosted, id))
        }
      }
      for (const c of change.controls) {
        const request = doc.control(c)
        if (request?.kind !== 'retry' || retried.has(request.message_id)) continue
        const reply = doc.message(request.message_id)
        if (!reply || reply.author !== doc.device || !RETRYABLE.has(reply.status) || !hosted.engine.canWrite) continue
        retried.add(reply.id)
        enqueue('retry', () => this.answer(hosted, reply.id, { retry: true }))
      }
    })
    this.log.info('agent answers in session', { session: hosted.id })
  }

  /**
   * Its replies left streaming when it last stopped (killed mid-reply) end
   * `interrupted`, and its presence stops saying it streams them.
   */
  private markInterrupted(hosted: HostedSession, messages: Message[]): void {
    const doc = hosted.engine.session
    for (const m of messages) {
      if (m.author !== doc.device || m.status !== 'streaming' || m.metadata?.agent === undefined) continue
      doc.endStream(m.id, 'interrupted', { code: 'interrupted', message: 'the agent stopped mid-reply (it was killed or crashed); ask it to try again' })
      if (!doc.auditEntry(`turn-${m.id}`)) doc.appendAudit({ id: `turn-${m.id}`, action: AGENT_TURN_ACTION, details: { message_id: m.id, outcome: 'interrupted' } })
      this.log.info('reply marked interrupted', { message: m.id })
      if (hosted.volatile().streaming?.message_id === m.id) hosted.setVolatile({ streaming: null, active_tools: [] })
    }
  }

  /**
   * One turn. `id` is the user message to answer, or with `retry` the
   * reply to answer again: a new reply (`metadata.retry_of`) from the
   * history before it, so the failed one stays as it ended.
   */
  private async answer(hosted: HostedSession, id: string, opts: { retry?: boolean } = {}): Promise<void> {
    const doc = hosted.engine.session
    const target = doc.message(id)
    if (!target || !hosted.engine.canWrite) return
    const ids = doc.messageIds()
    const upto = ids.indexOf(id)
    const history = ids.slice(0, opts.retry ? upto : upto + 1).map((m) => doc.message(m)!)
    const replyTo = opts.retry ? (target.metadata?.reply_to as string | undefined) : id
    // The config as the session's policies show it, read now: a change made anywhere applies to the next turn.
    const view = doc.policies.configView()
    const config = agentConfig(view)
    const model = typeof view.values.model === 'string' && view.values.model !== '' ? view.values.model : this.options.model
    const common = {
      agent: this.options.name,
      ...(replyTo !== undefined ? { replyTo } : {}),
      ...(opts.retry ? { metadata: { retry_of: id } } : {}),
      timestamp: Math.max(Date.now(), target.timestamp + 1),
      activeTools: [`model:${model ?? 'none'}`],
    }
    const session = { doc, setVolatile: (v: Parameters<HostedSession['setVolatile']>[0]) => hosted.setVolatile(v), settle: () => hosted.settle() }
    const source = model
      ? openAiSource(this.client, model, config, chatMessages(history, config))
      : () => Promise.reject(new KaiError('model_error', 'no model to ask: set config.model in the session, or start the agent with --model or KAI_AGENT_MODEL'))
    const onStop = (r: { device: string }) => this.log.info('stop request observed', { session: hosted.id, at: Date.now(), by: r.device })
    const result = await streamReply(session, source, { ...common, onStop, ...(model ? { model } : {}) })
    this.log.info('agent turn', { session: hosted.id, message: result.id, outcome: result.outcome, code: result.error?.code, model: model ?? null })
  }
}
