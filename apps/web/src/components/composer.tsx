import { useEffect, useLayoutEffect, useRef } from 'preact/hooks'

export interface ComposerProps {
  draft: string
  disabled: boolean
  onDraft: (text: string) => void
  onSend: (text: string) => void
  /** Takes focus when shown: the person just started (or brought over) this session to write in it. */
  autoFocus?: boolean
  /** Focus and caret carried from the composer this one replaces (early-input.ts). */
  handover?: { giveFocus(box: HTMLTextAreaElement | null): void; takeFocus(box: HTMLTextAreaElement | null): void }
  /** `composer` for the session's; the shell's, drawn before the session opens, is `early-composer`. */
  testId?: string
  placeholder?: string
}

/** The message box. Its draft is volatile state: it survives a reload and a switch of mode. */
export function Composer({ draft, disabled, onDraft, onSend, autoFocus = false, handover, testId = 'composer', placeholder = 'Message the agent' }: ComposerProps) {
  const box = useRef<HTMLTextAreaElement>(null)
  useEffect(() => {
    if (autoFocus && !disabled) box.current?.focus()
  }, [])
  // Layout effects: the caret is taken before the person can type into the new box, and given while the old one is still in the page.
  useLayoutEffect(() => {
    if (!handover) return
    const el = box.current
    handover.takeFocus(el)
    return () => handover.giveFocus(el)
  }, [])
  const send = () => {
    const text = draft.trim()
    if (text && !disabled) onSend(text)
  }
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault()
        send()
      }}
    >
      <textarea
        ref={box}
        data-testid={testId}
        aria-label="Message"
        rows={2}
        placeholder={disabled ? 'This device may only read this session' : placeholder}
        title="Enter sends, Shift+Enter starts a new line"
        value={draft}
        disabled={disabled}
        onInput={(e) => onDraft(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault()
            send()
          }
        }}
      />
      <button type="submit" class="primary" data-testid={testId === 'composer' ? 'send' : `${testId}-send`} disabled={disabled || draft.trim() === ''}>
        Send
      </button>
    </form>
  )
}
