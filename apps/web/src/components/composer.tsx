import { useEffect, useRef } from 'preact/hooks'

export interface ComposerProps {
  draft: string
  disabled: boolean
  onDraft: (text: string) => void
  onSend: (text: string) => void
  /** Takes focus when shown: the person just started (or brought over) this session to write in it. */
  autoFocus?: boolean
}

/** The message box. Its draft is volatile state: it survives a reload and a switch of mode. */
export function Composer({ draft, disabled, onDraft, onSend, autoFocus = false }: ComposerProps) {
  const box = useRef<HTMLTextAreaElement>(null)
  useEffect(() => {
    if (autoFocus && !disabled) box.current?.focus()
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
        data-testid="composer"
        aria-label="Message"
        rows={2}
        placeholder={disabled ? 'This device may only read this session' : 'Message the agent'}
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
      <button type="submit" class="primary" data-testid="send" disabled={disabled || draft.trim() === ''}>
        Send
      </button>
    </form>
  )
}
