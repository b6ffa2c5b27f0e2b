// The relay's signature-checking thread (see sodium-verifier.ts). Plain
// JavaScript, so it runs as is under every loader the relay runs under.
// A batch is one buffer: a u32 count, then per signature a u32 message
// length, the 32-byte key, the 64-byte signature and the message. The
// answer is one byte per signature, 1 if it verifies.
import { createRequire } from 'node:module'
import { parentPort } from 'node:worker_threads'

const sodium = createRequire(import.meta.url)('sodium-native')

parentPort.on('message', ({ id, batch }) => {
  const bytes = new Uint8Array(batch)
  const view = new DataView(batch)
  const count = view.getUint32(0, true)
  const verdicts = new Uint8Array(count)
  let at = 4
  for (let i = 0; i < count; i++) {
    const length = view.getUint32(at, true)
    const key = bytes.subarray(at + 4, at + 36)
    const signature = bytes.subarray(at + 36, at + 100)
    const message = bytes.subarray(at + 100, at + 100 + length)
    verdicts[i] = sodium.crypto_sign_verify_detached(signature, message, key) ? 1 : 0
    at += 100 + length
  }
  parentPort.postMessage({ id, verdicts }, [verdicts.buffer])
})
