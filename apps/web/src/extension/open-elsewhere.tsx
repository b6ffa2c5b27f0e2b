import { useEffect, useState } from 'preact/hooks'
import { chromeApi } from './chrome-api'

/** The popup's ways out: the same session in a full tab or in the side panel. */
export function OpenElsewhere({ sessionId }: { sessionId: string | null }) {
  const api = chromeApi
  // Known before the click: sidePanel.open must be called within the
  // click's user gesture, which an await before it would lose.
  const [windowId, setWindowId] = useState<number | undefined>(undefined)
  useEffect(() => {
    void api?.windows.getCurrent().then((w) => setWindowId(w.id))
  }, [api])
  if (!api) return null
  const hash = sessionId ? `#/s/${sessionId}` : ''
  return (
    <div class="open-elsewhere">
      <button type="button" class="quiet" data-testid="open-tab" onClick={() => void api.tabs.create({ url: api.runtime.getURL(`kai.html${hash}`) }).then(() => close())}>
        Open in tab
      </button>
      {api.sidePanel && windowId !== undefined && (
        <button type="button" class="quiet" data-testid="open-panel" onClick={() => void api.sidePanel!.open({ windowId }).then(() => close())}>
          Side panel
        </button>
      )}
    </div>
  )
}
