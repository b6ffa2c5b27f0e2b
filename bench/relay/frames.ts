import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { ZERO_HASH, WebCryptoDeviceKey, createGenesis, newStreamId, sealEnvelope, SessionKey, type RosterEntry } from '@kai-sync/crypto'
import { WireDoc } from '@kai-sync/engine'

// Pre-encoded y-websocket frames, so the relay, not the load client, is the
// bottleneck: each frame appends one real ~800-byte envelope, signed for
// that frame alone (the relay verifies each), to the room's log as one Yjs
// item of the sending client. Frames are made before a phase starts.

export interface BenchRoom {
  owner: WebCryptoDeviceKey
  genesis: RosterEntry
  key: SessionKey
  /** The room's first update: its genesis roster entry. */
  setup: Uint8Array
}

export async function createBenchRoom(): Promise<BenchRoom> {
  const owner = await WebCryptoDeviceKey.generate()
  const genesis = await createGenesis(owner, 'bench')
  const doc = new Y.Doc()
  new WireDoc(doc).addRosterEntries([genesis.bytes], null)
  return { owner, genesis, key: await SessionKey.generate(0), setup: Y.encodeStateAsUpdate(doc) }
}

/** Where a load client takes its frames from. */
export interface Frames {
  readonly clientId: number
  take(n: number): Promise<Uint8Array[]>
}

/** One load client's stream of frames: its own Yjs client id, each item after its previous one. */
export class FrameSource implements Frames {
  readonly doc = new Y.Doc()
  private readonly wire: WireDoc
  private readonly stream = newStreamId()
  private seq = 0

  constructor(private readonly room: BenchRoom) {
    this.wire = new WireDoc(this.doc)
  }

  get clientId(): number {
    return this.doc.clientID
  }

  /** The next `n` frames; frame k writes clock k of this client and carries envelope k of its stream. */
  async take(n: number): Promise<Uint8Array[]> {
    const envelopes = await Promise.all(
      Array.from({ length: n }, async () => {
        const env = await sealEnvelope({
          header: { kind: 'update', sessionId: this.room.genesis.sessionId, stream: this.stream, seq: ++this.seq, prev: ZERO_HASH, createdAt: Date.now(), clientIds: [], covers: [] },
          plaintext: new Uint8Array(620).fill(this.seq & 0xff),
          key: this.room.key,
          signer: this.room.owner,
        })
        return env.bytes
      }),
    )
    const out: Uint8Array[] = []
    const onUpdate = (u: Uint8Array) => out.push(updateFrame(u))
    this.doc.on('update', onUpdate)
    for (const e of envelopes) this.wire.append([e], null)
    this.doc.off('update', onUpdate)
    return out
  }
}

export function updateFrame(update: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 0)
  encoding.writeVarUint(e, 2)
  encoding.writeVarUint8Array(e, update)
  return encoding.toUint8Array(e)
}

export function syncStep1Empty(): Uint8Array {
  return new Uint8Array([0, 0, 1, 0])
}

/**
 * The (client, clock) of the first struct of a sync update frame, read from
 * its header alone; null for anything else. A relay rebroadcasts what a
 * client sent as one update, so this names the frame it came from.
 */
export function frameId(message: Uint8Array): { client: number; clock: number } | null {
  if (message[0] !== 0 || message[1] !== 2) return null
  const d = decoding.createDecoder(message)
  d.pos = 2
  decoding.readVarUint(d) // update length
  if (decoding.readVarUint(d) === 0) return null // clients
  decoding.readVarUint(d) // structs
  const client = decoding.readVarUint(d)
  const clock = decoding.readVarUint(d)
  return { client, clock }
}

/**
 * A FrameSource whose frames are kept, so that each run against a fresh
 * relay (an empty store) sends the same frames from the first again:
 * signing them is most of a run's setup, and a bench of many short runs
 * (bench/metrics-cost.ts) would spend most of its time there.
 */
export class FrameTape {
  private readonly frames: Uint8Array[] = []
  private readonly source: FrameSource

  constructor(room: BenchRoom) {
    this.source = new FrameSource(room)
  }

  /** The tape from its first frame, made further as a run needs more. */
  replay(): Frames {
    let at = 0
    return {
      clientId: this.source.clientId,
      take: async (n) => {
        if (this.frames.length < at + n) this.frames.push(...(await this.source.take(at + n - this.frames.length)))
        const out = this.frames.slice(at, at + n)
        at += n
        return out
      },
    }
  }
}

/** Both load clients' tapes of each room, for runs that each start a fresh relay. */
export class FrameTapes {
  private readonly byRoom = new Map<BenchRoom, [FrameTape, FrameTape]>()

  /** Client `slot` (0 or 1) of `room`, replayed from its first frame. */
  replay(room: BenchRoom, slot: 0 | 1): Frames {
    let tapes = this.byRoom.get(room)
    if (!tapes) this.byRoom.set(room, (tapes = [new FrameTape(room), new FrameTape(room)]))
    return tapes[slot].replay()
  }
}
