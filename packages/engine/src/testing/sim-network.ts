import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import { transportOrigin, type TransportOrigin } from '../origins'

/** A message in flight on one directed link: an update, or a sync request (y-websocket's sync step 1). */
export type SimMessage = { type: 'update'; update: Uint8Array } | { type: 'sync'; stateVector: Uint8Array }
type Message = SimMessage

interface Link {
  from: SimNode
  to: SimNode
  up: boolean
  queue: Message[]
  origin: TransportOrigin
}

export interface SimNode {
  readonly name: string
  readonly doc: Y.Doc
  /** The device whose replica this is, if it is one. */
  readonly device?: Uint8Array
  /** Set for a node that checks what it gets (a relay's guard), see addGuard. */
  readonly guard?: SimGuard
}

/**
 * A node that is not a plain Y.Doc: a relay that checks every message
 * before it stores it, and sends what it stored with `SimNetwork.send`.
 * Each time a link to it comes up is a new connection.
 */
export interface SimGuard {
  /** A connection from `peer` opened (the link came up), replacing any before it. */
  open(peer: SimNode): void
  /** A message from `peer` arrived on the current connection. */
  receive(peer: SimNode, message: SimMessage): void
  /** Resolves once everything received so far is handled and what it sends is queued. */
  whenIdle(): Promise<void>
}

export interface NetworkFaults {
  /** Chance a delivery takes a random message instead of the oldest. */
  reorder: number
  /** Chance a message is lost. */
  drop: number
  /** Chance a delivered message stays queued to arrive again. */
  duplicate: number
}

/**
 * A seeded, simulated network between Yjs documents, in the manner of
 * yjs's TestConnector: per-link queues; random delivery, loss, duplication
 * and reordering; links cut and healed; nodes taken offline and back. A
 * (re)connection starts with a state-vector exchange, as y-websocket's sync
 * step 1 and 2 do, so whatever was lost is recovered by the next heal.
 * Every random choice comes from `gen`, so a seed replays its schedule.
 */
export class SimNetwork {
  private readonly nodes = new Map<string, SimNode>()
  private readonly links: Link[] = []
  private readonly offline = new Set<SimNode>()
  delivered = 0

  constructor(
    readonly gen: prng.PRNG,
    readonly faults: NetworkFaults = { reorder: 0.2, drop: 0.05, duplicate: 0.05 },
  ) {}

  add(name: string, doc: Y.Doc, device?: Uint8Array): SimNode {
    const node: SimNode = device ? { name, doc, device } : { name, doc }
    this.nodes.set(name, node)
    // Forward every update to every other link: flooding, as a relay
    // rebroadcasts, minus the link it came from.
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      for (const link of this.links) {
        if (link.from === node && link.up && origin !== this.reverse(link)?.origin) link.queue.push({ type: 'update', update })
      }
    })
    return node
  }

  /**
   * Adds a guarded node: the network hands it each message instead of
   * applying it, and floods nothing for it; it answers with `send`.
   * `doc` is what it stores (never written to by the network).
   */
  addGuard(name: string, doc: Y.Doc, guard: SimGuard): SimNode {
    const node: SimNode = { name, doc, guard }
    this.nodes.set(name, node)
    return node
  }

  /** Queues `update` from `from` to `to`, if their link is up (a guard's reply or broadcast). */
  send(from: SimNode, to: SimNode, update: Uint8Array): void {
    const link = this.links.find((l) => l.from === from && l.to === to)
    if (link?.up) link.queue.push({ type: 'update', update })
  }

  /** Resolves once every guarded node has handled what it received. */
  async whenIdle(): Promise<void> {
    for (const n of this.nodes.values()) if (n.guard) await n.guard.whenIdle()
  }

  /** True if some node is a guard: a schedule then waits for it after each step. */
  get guarded(): boolean {
    for (const n of this.nodes.values()) if (n.guard) return true
    return false
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name)
    if (!n) throw new Error(`no node ${name}`)
    return n
  }

  /** Links two nodes both ways and starts a sync exchange. */
  connect(a: SimNode, b: SimNode): void {
    for (const [from, to] of [[a, b], [b, a]] as const) {
      let link = this.links.find((l) => l.from === from && l.to === to)
      if (!link) {
        link = { from, to, up: false, queue: [], origin: transportOrigin(`sim:${from.name}->${to.name}`) }
        this.links.push(link)
      }
      link.up = !this.offline.has(from) && !this.offline.has(to)
      link.queue = []
      if (link.up && to.guard) to.guard.open(from)
      if (link.up) link.queue.push({ type: 'sync', stateVector: Y.encodeStateVector(from.doc) })
    }
  }

  /** Cuts the link between two nodes; what was in flight is lost. */
  disconnect(a: SimNode, b: SimNode): void {
    for (const l of this.links) {
      if ((l.from === a && l.to === b) || (l.from === b && l.to === a)) {
        l.up = false
        l.queue = []
      }
    }
  }

  /** Takes a node offline: all its links go down. */
  goOffline(node: SimNode): void {
    this.offline.add(node)
    for (const l of this.links) if (l.from === node || l.to === node) this.disconnect(l.from, l.to)
  }

  /** Brings a node back and resyncs every link it had. */
  goOnline(node: SimNode): void {
    this.offline.delete(node)
    for (const l of this.links) if (l.from === node) this.connect(l.from, l.to)
  }

  /**
   * Brings every node online and reconnects every link with a sync
   * exchange, as transports do after a drop: messages lost on a link that
   * stayed up are recovered here.
   */
  healAll(): void {
    this.offline.clear()
    for (const l of this.links) this.connect(l.from, l.to)
  }

  /** Cuts a random link (a partition between two places). */
  cutRandomLink(): void {
    const up = this.links.filter((l) => l.up)
    if (up.length === 0) return
    const l = prng.oneOf(this.gen, up)
    this.disconnect(l.from, l.to)
  }

  get pending(): number {
    let n = 0
    for (const l of this.links) if (l.up) n += l.queue.length
    return n
  }

  /** Delivers, drops or duplicates one message on a random busy link. */
  step(): boolean {
    const busy = this.links.filter((l) => l.up && l.queue.length > 0)
    if (busy.length === 0) return false
    const link = prng.oneOf(this.gen, busy)
    const index = prng.bool(this.gen) && prng.real53(this.gen) < this.faults.reorder * 2 ? prng.int32(this.gen, 0, link.queue.length - 1) : 0
    const [message] = link.queue.splice(index, 1)
    if (prng.real53(this.gen) < this.faults.drop) return true
    if (prng.real53(this.gen) < this.faults.duplicate) link.queue.push(message!)
    this.deliver(link, message!)
    return true
  }

  /** Delivers everything in flight, faults off, until the network is quiet. */
  flush(maxMessages = 100_000): void {
    for (let i = 0; i < maxMessages; i++) {
      const busy = this.links.find((l) => l.up && l.queue.length > 0)
      if (!busy) return
      this.deliver(busy, busy.queue.shift()!)
    }
    throw new Error(`the network did not go quiet within ${maxMessages} messages`)
  }

  private deliver(link: Link, message: Message): void {
    this.delivered++
    if (link.to.guard) {
      link.to.guard.receive(link.from, message)
      return
    }
    if (message.type === 'update') {
      Y.applyUpdate(link.to.doc, message.update, link.origin)
      return
    }
    // A sync request: answer with what the requester lacks.
    const back = this.reverse(link)
    if (!back?.up) return
    const diff = Y.encodeStateAsUpdate(link.to.doc, message.stateVector)
    back.queue.push({ type: 'update', update: diff })
  }

  private reverse(link: Link): Link | undefined {
    return this.links.find((l) => l.from === link.to && l.to === link.from)
  }
}
