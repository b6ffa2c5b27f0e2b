// The few chrome.* calls the extension makes, typed here rather than
// pulling in all of @types/chrome. Undefined outside the extension.
export interface ChromeApi {
  runtime: { getURL(path: string): string; onInstalled: { addListener(f: () => void): void } }
  tabs: { create(options: { url: string }): Promise<unknown> }
  windows: { getCurrent(): Promise<{ id?: number }> }
  sidePanel?: {
    open(options: { windowId: number }): Promise<void>
    setPanelBehavior(options: { openPanelOnActionClick: boolean }): Promise<void>
  }
}

export const chromeApi: ChromeApi | undefined = (globalThis as { chrome?: { runtime?: { id?: string } } }).chrome?.runtime?.id
  ? ((globalThis as unknown as { chrome: ChromeApi }).chrome)
  : undefined
