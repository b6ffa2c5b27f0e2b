import type { Message, SessionRecord } from '@kai-sync/model'
import type { DaemonClient, SseEvent } from './daemon-client'
import { messageHeader, formatMessage } from './format'

// `kai tail`: the last messages, then every change as it happens, from this
// device or any other. A streamed reply is printed as it grows. Events are
// subscribed to before the record is read, so nothing falls between the two.

export interface TailOptions {
  last: number
  follow: boolean
  json: boolean
  write: (text: string) => void
  signal: AbortSignal
}

export async function tail(client: DaemonClient, sessionId: string, options: TailOptions): Promise<void> {
  const path = `/session/${encodeURIComponent(sessionId)}`
  const printer = new MessagePrinter(options)
  if (!options.follow) {
    const record = await client.get<SessionRecord>(path)
    for (const m of record.messages.slice(-options.last)) printer.show(m)
    printer.end()
    return
  }
  let backlog: SseEvent[] | null = []
  let ready!: () => void
  const subscribed = new Promise<void>((resolve) => (ready = resolve))
  // The messages as last shown: `delta` and `message_status` events build on them.
  const known = new Map<string, Message>()
  const show = (m: Message) => {
    known.set(m.id, m)
    printer.show(m)
  }
  const apply = async (e: SseEvent) => {
    if (e.event === 'message') show(e.data as Message)
    else if (e.event === 'delta') {
      const { id, offset, text } = e.data as { id: string; offset: number; text: string }
      const m = known.get(id)
      // The record read may already hold this text; a gap (text we never saw) means reading the message again.
      if (m && m.content.length >= offset) {
        if (m.content.length < offset + text.length) show({ ...m, content: m.content.slice(0, offset) + text })
      } else await refetch(id)
    } else if (e.event === 'message_status') {
      const { id, status } = e.data as { id: string; status: Message['status'] }
      const m = known.get(id)
      if (m) show({ ...m, status })
      else await refetch(id)
    } else if (e.event === 'resync') {
      for (const m of (await client.get<SessionRecord>(path)).messages) show(m)
    }
  }
  const refetch = async (id: string) => {
    const m = (await client.get<SessionRecord>(path)).messages.find((x) => x.id === id)
    if (m) show(m)
  }
  // Events are applied one at a time, in order, even when one needs a request.
  let applying = Promise.resolve()
  const onEvent = (e: SseEvent) => {
    if (e.event === 'ready') ready()
    if (backlog) backlog.push(e)
    else applying = applying.then(() => apply(e))
  }
  const following = client.events(`${path}/events`, onEvent, options.signal)
  await Promise.race([subscribed, following])
  const record = await client.get<SessionRecord>(path)
  for (const m of record.messages) known.set(m.id, m)
  for (const m of record.messages.slice(-options.last)) printer.show(m)
  for (const e of backlog) await apply(e)
  backlog = null
  await following
  await applying
  printer.end()
}

/** Prints each message once, and of a streaming one only what was not printed yet. */
class MessagePrinter {
  private readonly printed = new Map<string, string>()
  /** The streaming message whose text is being printed on the current line. */
  private open: string | null = null

  constructor(private readonly options: Pick<TailOptions, 'json' | 'write'>) {}

  show(m: Message): void {
    const before = this.printed.get(m.id)
    if (before !== undefined && before === m.content && (m.status === 'streaming' || this.open !== m.id)) return
    this.printed.set(m.id, m.content)
    if (this.options.json) {
      this.options.write(JSON.stringify(m) + '\n')
      return
    }
    if (m.status === 'complete' && before === undefined) {
      this.closeLine()
      this.options.write(formatMessage(m) + '\n')
      return
    }
    if (this.open !== m.id || before === undefined || !m.content.startsWith(before)) {
      // A new stream, another message's turn, or text merged in the middle: start its line afresh.
      this.closeLine()
      this.options.write(messageHeader(m) + m.content)
      this.open = m.id
    } else {
      this.options.write(m.content.slice(before.length))
    }
    if (m.status === 'complete') this.closeLine()
  }

  end(): void {
    this.closeLine()
  }

  private closeLine(): void {
    if (this.open === null) return
    this.options.write('\n')
    this.open = null
  }
}
