import { keep, type EarlyMessage } from './early-outbox'

// What the person does in a page before its session view is there (the
// shell's composer, then the app's while the session loads), held for the
// session view to take over: the draft, where the caret was, and what was
// sent. One page runs one copy of this module (the shell's chunk, which
// the app's code shares).

type Listener = () => void

class EarlyInput {
  draft = ''
  /** Messages sent here and not yet taken by the session, in order. */
  pending: EarlyMessage[] = []
  private saving: Promise<unknown> = Promise.resolve()
  private listeners = new Set<Listener>()
  private caret: { start: number; end: number } | null = null
  /** Set when a message could not be kept on disk; said beside the composer. */
  failed: string | null = null

  send(sessionId: string, text: string): void {
    const m: EarlyMessage = { id: `m-${crypto.randomUUID()}`, sessionId, at: Date.now(), text }
    this.pending = [...this.pending, m]
    this.draft = ''
    this.saving = this.saving.then(() =>
      keep(m).catch((e: unknown) => {
        // Still held in this page, and delivered from here when the session opens.
        this.failed = e instanceof Error ? e.message : String(e)
        this.changed()
      }),
    )
    this.changed()
  }

  /** Shows what an earlier page kept for a session and did not deliver (it was reloaded or closed before the session opened). */
  showKept(messages: EarlyMessage[]): void {
    const known = new Set(this.pending.map((m) => m.id))
    const more = messages.filter((m) => !known.has(m.id))
    if (more.length === 0) return
    this.pending = [...this.pending, ...more].sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1))
    this.changed()
  }

  /** Resolves once every message sent so far is on disk (or known not to be). */
  saved(): Promise<void> {
    return this.saving.then(() => undefined)
  }

  /** Hands over what this page holds for a session, once: the view that takes it owns it from here. */
  take(sessionId: string): { draft: string; pending: EarlyMessage[] } {
    const pending = this.pending.filter((m) => m.sessionId === sessionId)
    const taken = { draft: this.draft, pending }
    this.draft = ''
    this.pending = this.pending.filter((m) => m.sessionId !== sessionId)
    this.changed()
    return taken
  }

  subscribe(f: Listener): () => void {
    this.listeners.add(f)
    return () => this.listeners.delete(f)
  }

  private changed(): void {
    for (const f of this.listeners) f()
  }

  /**
   * The composer is drawn anew as the shell gives way to the app and the
   * app to the session view: the one going records whether it had focus and
   * the caret, the one coming takes them, so typing goes on.
   */
  giveFocus(box: HTMLTextAreaElement | null): void {
    this.caret = box && document.activeElement === box ? { start: box.selectionStart, end: box.selectionEnd } : null
  }

  takeFocus(box: HTMLTextAreaElement | null): void {
    const caret = this.caret
    this.caret = null
    if (!box || !caret || box.disabled) return
    box.focus()
    box.setSelectionRange(Math.min(caret.start, box.value.length), Math.min(caret.end, box.value.length))
  }
}

export const early = new EarlyInput()
