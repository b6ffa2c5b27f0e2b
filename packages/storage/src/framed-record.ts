import * as decoding from 'lib0/decoding'

// Several updates of one room in one LevelDB value: a varuint count, then
// each update as a varuint length and its bytes (lib0's varUint8Array).

/** The updates framed in one value, written in one exact allocation: under load, one per room per group commit. */
export function frameUpdates(updates: readonly Uint8Array[]): Uint8Array {
  let size = varUintSize(updates.length)
  for (const u of updates) size += varUintSize(u.length) + u.length
  const out = new Uint8Array(size)
  let at = writeVarUint(out, 0, updates.length)
  for (const u of updates) {
    at = writeVarUint(out, at, u.length)
    out.set(u, at)
    at += u.length
  }
  return out
}

/** The updates of a framed value (views into it). */
export function unframeUpdates(value: Uint8Array): Uint8Array[] {
  const d = decoding.createDecoder(value)
  const out: Uint8Array[] = []
  for (let n = decoding.readVarUint(d); n > 0; n--) out.push(decoding.readVarUint8Array(d))
  return out
}

function varUintSize(n: number): number {
  let size = 1
  for (; n > 127; n = Math.floor(n / 128)) size++
  return size
}

/** lib0's varuint: seven bits a byte, low first, the high bit set on all but the last. */
function writeVarUint(out: Uint8Array, at: number, n: number): number {
  while (n > 127) {
    out[at++] = 0x80 | (n & 0x7f)
    n = Math.floor(n / 128)
  }
  out[at++] = n
  return at
}
