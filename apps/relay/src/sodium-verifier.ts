import { Worker } from 'node:worker_threads'
import { passesEd25519Prechecks, type SignatureVerifier } from '@kai-sync/crypto'
import { loadSodium, type Sodium } from './sodium'

// Ed25519 through libsodium, whose rule is the replicas' rule (the crypto
// package's pre-checks are applied first all the same). Alone, a check
// runs inline: about 50 µs, no thread hop, the lowest latency. Under load,
// the checks asked for in one turn of the event loop go to a worker thread
// as one buffer, so this thread keeps merging, storing and sending while
// another core verifies.

const INLINE_PER_MS = 2

interface Job {
  publicKey: Uint8Array
  message: Uint8Array
  signature: Uint8Array
  resolve(ok: boolean): void
}

export interface RelayVerifier extends SignatureVerifier {
  /** Ends the worker thread; checks still waiting are done inline. */
  close(): Promise<void>
}

/** Null where libsodium cannot load. `inlinePerMs` 0 sends every check to the thread. */
export function sodiumVerifier(options: { inlinePerMs?: number } = {}): RelayVerifier | null {
  const sodium = loadSodium()
  return sodium ? new SodiumVerifier(sodium, options.inlinePerMs ?? INLINE_PER_MS) : null
}

class SodiumVerifier implements RelayVerifier {
  readonly name = 'libsodium'
  private worker: Worker | null = null
  /** False once a thread failed: from then on every check runs inline. */
  private useThread = true
  private batch: Job[] = []
  private readonly inFlight = new Map<number, Job[]>()
  private nextBatchId = 0
  private windowStart = 0
  private inWindow = 0

  constructor(
    private readonly sodium: Sodium,
    private readonly inlinePerMs: number,
  ) {}

  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
    if (!passesEd25519Prechecks(publicKey, signature)) return Promise.resolve(false)
    if (!this.useThread || (this.inFlight.size === 0 && this.batch.length === 0 && this.inlineAllowed())) {
      return Promise.resolve(this.check(publicKey, message, signature))
    }
    return new Promise((resolve) => {
      if (this.batch.length === 0) setImmediate(() => this.send())
      this.batch.push({ publicKey, message, signature, resolve })
    })
  }

  async close(): Promise<void> {
    const worker = this.worker
    this.worker = null
    this.useThread = false
    await worker?.terminate()
    this.checkStranded()
  }

  private check(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    return this.sodium.crypto_sign_verify_detached(signature, message, publicKey)
  }

  /** At most `inlinePerMs` inline checks per millisecond. */
  private inlineAllowed(): boolean {
    const now = performance.now()
    if (now - this.windowStart >= 1) {
      this.windowStart = now
      this.inWindow = 0
    }
    return ++this.inWindow <= this.inlinePerMs
  }

  /** One buffer per batch (see verify-worker.mjs for the layout), handed over, not copied. */
  private send(): void {
    const jobs = this.batch
    this.batch = []
    if (jobs.length === 0) return
    if (!this.useThread) {
      for (const j of jobs) j.resolve(this.check(j.publicKey, j.message, j.signature))
      return
    }
    let size = 4
    for (const j of jobs) size += 100 + j.message.length
    const buffer = new ArrayBuffer(size)
    const bytes = new Uint8Array(buffer)
    const view = new DataView(buffer)
    view.setUint32(0, jobs.length, true)
    let at = 4
    for (const j of jobs) {
      view.setUint32(at, j.message.length, true)
      bytes.set(j.publicKey, at + 4)
      bytes.set(j.signature, at + 36)
      bytes.set(j.message, at + 100)
      at += 100 + j.message.length
    }
    const id = this.nextBatchId++
    this.inFlight.set(id, jobs)
    this.thread().postMessage({ id, batch: buffer }, [buffer])
  }

  private thread(): Worker {
    if (this.worker) return this.worker
    const worker = new Worker(new URL('./verify-worker.mjs', import.meta.url))
    // The relay's server keeps the process alive; this thread must not.
    worker.unref()
    worker.on('message', ({ id, verdicts }: { id: number; verdicts: Uint8Array }) => {
      const jobs = this.inFlight.get(id)
      this.inFlight.delete(id)
      jobs?.forEach((j, i) => j.resolve(verdicts[i] === 1))
    })
    const failed = () => {
      if (this.worker !== worker) return
      this.worker = null
      this.useThread = false
      this.checkStranded()
    }
    worker.on('error', failed)
    worker.on('exit', failed)
    this.worker = worker
    return worker
  }

  /** Checks a lost or closed thread still owed, done here. */
  private checkStranded(): void {
    for (const jobs of this.inFlight.values()) for (const j of jobs) j.resolve(this.check(j.publicKey, j.message, j.signature))
    this.inFlight.clear()
  }
}
