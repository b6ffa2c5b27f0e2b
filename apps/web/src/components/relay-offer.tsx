import { saveLinkSettings } from '../link-settings'

/**
 * A relay address that came with the page's address (`?relay=`): asked
 * about, never adopted silently. A relay sees only ciphertext, but it
 * learns when this device is online and which sessions it opens, and it
 * is where handoff links send the next device.
 */
export function RelayOffer({ offered, current, onDone }: { offered: string; current: string | null; onDone: () => void }) {
  return (
    <div class="backdrop">
      <div class="dialog relay-offer" role="alertdialog" aria-modal="true" aria-labelledby="relay-offer-title" data-testid="relay-offer" data-relay={offered}>
        <h2 id="relay-offer-title">
          Sync through <code>{offered}</code>?
        </h2>
        <p>The address that opened this page names this relay. Your sessions would sync through it: it stores only ciphertext, but it sees when this device is online. Use it only if you started it or trust who runs it.</p>
        <p class="small">{current ? <>Now this device syncs through <code>{current}</code>.</> : 'This device has no relay yet: its sessions stay on it.'}</p>
        <div class="dialog-actions">
          <button
            type="button"
            class="primary"
            data-testid="relay-offer-use"
            onClick={() => {
              saveLinkSettings({ relayUrl: offered })
              onDone()
            }}
          >
            Use
          </button>
          <button type="button" data-testid="relay-offer-ignore" onClick={onDone}>
            Ignore
          </button>
        </div>
      </div>
    </div>
  )
}
