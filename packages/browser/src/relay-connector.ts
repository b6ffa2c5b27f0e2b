import { ObservableV2 } from 'lib0/observable'
import type { DeviceKey } from '@kai-sync/crypto'
import type { ConnectRelay, RelayConnection, RelayConnectionEvents, RelayConnectorOptions, RelayRefusal } from './relay-connection'

// The connector the app makes for a relay's address. The link's code
// (relay-link.ts: the Web Lock that picks one context to hold the socket,
// the capability signing, then y-websocket) is fetched when a session first
// connects, not with the page: a session opens and takes typing from this
// device's own store, relay or not, and a device with no relay set never
// needs it.

/**
 * The relay at `url` for every session this device opens. One context per
 * origin and session holds the socket (a Web Lock decides which; the next
 * takes over when it closes); the others get the session's changes and
 * presence over BroadcastChannel, and the relay's state and acks from the
 * holder. `perContext` (or a browser without Web Locks): every context
 * connects itself.
 */
export function relayConnector(url: string, device: DeviceKey, options: RelayConnectorOptions = {}): ConnectRelay {
  return (target) => new LoadingRelayLink(url, import('./relay-link').then(({ openRelayLink }) => () => openRelayLink(url, device, target, options)))
}

/**
 * Stands for the link until its code has arrived, then passes on what the
 * link says. Offline meanwhile, as while a socket connects; where the code
 * cannot be fetched it stays offline, as for a relay it cannot reach.
 */
class LoadingRelayLink extends ObservableV2<RelayConnectionEvents> implements RelayConnection {
  connected = false
  refusal: RelayRefusal | null = null
  private link: RelayConnection | null = null
  private destroyed = false
  private readonly gone: Promise<void>
  private leave: () => void = () => undefined
  private readonly ready: Promise<RelayConnection | null>

  constructor(
    readonly url: string,
    loaded: Promise<() => RelayConnection>,
  ) {
    super()
    this.gone = new Promise<void>((resolve) => (this.leave = resolve))
    this.ready = loaded.then(
      (open) => {
        if (this.destroyed) return null
        const link = (this.link = open())
        link.on('status', (connected) => {
          this.connected = link.connected
          this.refusal = link.refusal
          this.emit('status', [connected])
        })
        return link
      },
      (e: unknown) => {
        console.warn('cannot reach the relay:', (e as Error).message)
        return null
      },
    )
  }

  async whenAcknowledged(): Promise<void> {
    const link = await this.ready
    // No code, no link: nothing reaches the relay until this closes.
    if (link) await link.whenAcknowledged()
    else await this.gone
  }

  override destroy(): void {
    this.destroyed = true
    this.link?.destroy()
    this.leave()
    super.destroy()
  }
}
