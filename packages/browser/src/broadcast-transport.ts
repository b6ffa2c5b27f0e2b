import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import { applyAwarenessUpdate, encodeAwarenessUpdate, type Awareness } from 'y-protocols/awareness'
import { transportOrigin, type TransportOrigin } from '@kai-sync/engine'

// Message kinds on the channel. BroadcastChannel reaches every other
// context of the origin (never the sender), so there is no addressing:
// a newcomer says HELLO with its state vector, and each context already
// there answers with what the newcomer lacks and its own state vector.
const HELLO = 0
const SYNC = 1
const AWARENESS = 2

/** The channel one session's wire doc and presence travel on. */
export function wireChannelName(sessionId: string): string {
  return `kai-sync/wire/${sessionId}`
}

/**
 * Live sync between the contexts of one origin (tabs, popup, side panel)
 * over BroadcastChannel: wire-doc updates (ciphertext) and awareness
 * (sealed presence). IndexedDB is shared by those contexts but fires no
 * change events, so this is what makes them live. `disconnect` cuts the
 * link; `connect` heals it, exchanging what each side missed.
 */
export class BroadcastTransport {
  readonly origin: TransportOrigin = transportOrigin('broadcast')
  private channel: BroadcastChannel | null = null

  constructor(
    readonly doc: Y.Doc,
    readonly awareness: Awareness | null,
    readonly channelName: string,
  ) {
    this.connect()
  }

  get connected(): boolean {
    return this.channel !== null
  }

  connect(): void {
    if (this.channel) return
    this.channel = new BroadcastChannel(this.channelName)
    this.channel.onmessage = (e: MessageEvent) => {
      if (e.data instanceof Uint8Array) this.receive(e.data)
    }
    this.doc.on('update', this.onDocUpdate)
    this.awareness?.on('update', this.onAwarenessUpdate)
    this.post(HELLO, (enc) => encoding.writeVarUint8Array(enc, Y.encodeStateVector(this.doc)))
    this.postOwnAwareness()
  }

  disconnect(): void {
    if (!this.channel) return
    this.doc.off('update', this.onDocUpdate)
    this.awareness?.off('update', this.onAwarenessUpdate)
    this.channel.close()
    this.channel = null
  }

  destroy(): void {
    this.disconnect()
  }

  private readonly onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === this.origin) return
    this.post(SYNC, (enc) => syncProtocol.writeUpdate(enc, update))
  }

  // This context's own state goes out; so do states it learned from
  // another transport (the relay, which one context of the origin holds),
  // never those that came over this channel.
  private readonly onAwarenessUpdate = (
    { added, updated, removed }: { added: number[]; updated: number[]; removed: number[] },
    origin: unknown,
  ): void => {
    const awareness = this.awareness
    if (origin === this.origin || !awareness) return
    const changed = [...added, ...updated, ...removed]
    const self = awareness.clientID
    if (changed.includes(self)) this.postOwnAwareness()
    const learned = typeof origin === 'object' && origin !== null ? changed.filter((c) => c !== self) : []
    if (learned.length > 0) this.post(AWARENESS, (enc) => encoding.writeVarUint8Array(enc, encodeAwarenessUpdate(awareness, learned)))
  }

  private postOwnAwareness(): void {
    const awareness = this.awareness
    if (!awareness) return
    this.post(AWARENESS, (enc) => encoding.writeVarUint8Array(enc, encodeAwarenessUpdate(awareness, [awareness.clientID])))
  }

  private post(kind: number, write: (enc: encoding.Encoder) => void): void {
    if (!this.channel) return
    const enc = encoding.createEncoder()
    encoding.writeVarUint(enc, kind)
    write(enc)
    this.channel.postMessage(encoding.toUint8Array(enc))
  }

  private receive(data: Uint8Array): void {
    const dec = decoding.createDecoder(data)
    try {
      switch (decoding.readVarUint(dec)) {
        case HELLO: {
          const theirs = decoding.readVarUint8Array(dec)
          this.post(SYNC, (enc) => syncProtocol.writeSyncStep2(enc, this.doc, theirs))
          this.post(SYNC, (enc) => syncProtocol.writeSyncStep1(enc, this.doc))
          this.postOwnAwareness()
          break
        }
        case SYNC: {
          const reply = encoding.createEncoder()
          encoding.writeVarUint(reply, SYNC)
          syncProtocol.readSyncMessage(dec, reply, this.doc, this.origin)
          // A step 1 asks for what we have that the sender lacks.
          if (encoding.length(reply) > 1) this.channel?.postMessage(encoding.toUint8Array(reply))
          break
        }
        case AWARENESS:
          if (this.awareness) applyAwarenessUpdate(this.awareness, decoding.readVarUint8Array(dec), this.origin)
          break
      }
    } catch {
      // A message this version cannot read (another build in another tab): ignored.
    }
  }
}
