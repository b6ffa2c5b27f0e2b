import { useLayoutEffect, useRef } from 'preact/hooks'
import type { ComponentChildren } from 'preact'

const FOCUSABLE = 'button, [href], input, select, textarea, summary, [tabindex]:not([tabindex="-1"])'

function focusables(root: HTMLElement): HTMLElement[] {
  return [...root.querySelectorAll<HTMLElement>(FOCUSABLE)].filter((el) => !el.matches(':disabled') && el.getClientRects().length > 0)
}

/**
 * A modal dialog a keyboard and a screen reader can use: it takes focus
 * when it opens, keeps Tab and Shift+Tab inside (the rest of the page is
 * inert meanwhile), closes on Escape, and gives focus back to whatever had it before (the button that opened it).
 * Not the native <dialog>: Preact unmounts this one rather than calling
 * close(), and the native one lets Tab leave to the browser's own UI.
 */
export function Modal({
  labelledBy,
  label,
  sheet = false,
  onClose,
  closeOnBackdrop = false,
  class: className = '',
  testId,
  children,
  ...data
}: {
  /** The id of its heading; or `label`, for one without a heading. */
  labelledBy?: string
  label?: string
  /** A sheet sliding in from the side (the sessions list on a phone), not a dialog in the middle. */
  sheet?: boolean
  /** Escape, and a click beside the dialog when closeOnBackdrop. */
  onClose: () => void
  closeOnBackdrop?: boolean
  class?: string
  testId: string
  children: ComponentChildren
  [data: `data-${string}`]: string | undefined
}) {
  const ref = useRef<HTMLDivElement>(null)
  const close = useRef(onClose)
  close.current = onClose
  // A layout effect: it runs (and its cleanup too) as the dialog enters and leaves the DOM, not a frame later.
  useLayoutEffect(() => {
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null
    const dialog = ref.current!
    const backdrop = dialog.parentElement!
    // Everything beside the dialog is inert while it is open: no focus, no clicks, hidden from screen readers.
    const beside = [...(backdrop.parentElement?.children ?? [])].filter((el): el is HTMLElement => el !== backdrop && el instanceof HTMLElement && !el.inert)
    for (const el of beside) el.inert = true
    ;(focusables(dialog)[0] ?? dialog).focus()
    const onKeyDown = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.preventDefault()
        close.current()
        return
      }
      if (e.key !== 'Tab') return
      const all = focusables(dialog)
      const first = all[0]
      const last = all[all.length - 1]
      const at = document.activeElement
      if (!first || !last) return e.preventDefault()
      if (e.shiftKey ? at === first || !dialog.contains(at) : at === last || !dialog.contains(at)) {
        e.preventDefault()
        ;(e.shiftKey ? last : first).focus()
      }
    }
    document.addEventListener('keydown', onKeyDown)
    return () => {
      document.removeEventListener('keydown', onKeyDown)
      for (const el of beside) el.inert = false
      // Back to the opener, unless the person has already moved on elsewhere.
      const now = document.activeElement
      if (opener?.isConnected && (!now || now === document.body || dialog.contains(now))) opener.focus()
    }
  }, [])
  return (
    <div class="backdrop" onClick={(e) => closeOnBackdrop && e.target === e.currentTarget && close.current()}>
      <div ref={ref} class={`${sheet ? 'sheet' : 'dialog'} ${className}`} role="dialog" aria-modal="true" aria-labelledby={labelledBy} aria-label={label} tabIndex={-1} data-testid={testId} {...data}>
        {children}
      </div>
    </div>
  )
}
