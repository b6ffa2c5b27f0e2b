import { useEffect, useState } from 'preact/hooks'
import { Composer } from '../components/composer'
import { early } from './early-input'
import { kept } from './early-outbox'
import type { LastSession } from './last-session'

/**
 * The session a page last showed, drawn before it is open: a composer that
 * takes typing and sending at once (early-input.ts keeps what is sent,
 * sealed, until the session view takes it), and what was sent, marked as
 * waiting. The shell draws it from its own code; the app keeps it while
 * the session loads. `problem`: why the session is not coming yet.
 */
export function EarlySession({ session, problem = null }: { session: LastSession; problem?: preact.ComponentChildren }) {
  const [, redraw] = useState(0)
  useEffect(() => early.subscribe(() => redraw((n) => n + 1)), [])
  // What a page before this one kept and did not deliver shows too: it is still coming.
  useEffect(() => {
    kept(session.id).then(
      (r) => early.showKept(r.messages),
      () => undefined, // the session view says what it cannot read
    )
  }, [session.id])
  const pending = early.pending.filter((m) => m.sessionId === session.id)
  return (
    <main class="main early" aria-busy={problem ? undefined : 'true'} data-testid="early-session">
      <div class="history" role="region" aria-label="Messages" tabIndex={0}>
        {problem ?? (
          <p class="opening-line" data-testid="opening">
            Opening…
          </p>
        )}
        {pending.map((m) => (
          <div class="message user" key={m.id} data-testid="early-message">
            <div class="bubble">
              <span class="content">{m.text}</span>
            </div>
            <span class="meta">Sent as soon as the session opens</span>
          </div>
        ))}
        {early.failed && (
          <p class="problem" role="alert" data-testid="early-not-kept">
            What you sent could not be kept on this device ({early.failed}). It is sent when the session opens if this page stays open.
          </p>
        )}
      </div>
      <Composer
        testId="early-composer"
        draft={early.draft}
        disabled={!session.canWrite}
        handover={early}
        onDraft={(text) => {
          early.draft = text
          redraw((n) => n + 1)
        }}
        onSend={(text) => early.send(session.id, text)}
      />
    </main>
  )
}
