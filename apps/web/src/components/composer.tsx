export interface ComposerProps {
  draft: string
  disabled: boolean
  onDraft: (text: string) => void
  onSend: (text: string) => void
}

/** The message box. Its draft is volatile state: it survives a reload and a switch of mode. */
export function Composer({ draft, disabled, onDraft, onSend }: ComposerProps) {
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
        data-testid="composer"
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
