import * as decoding from 'lib0/decoding'

// A pass over a Yjs (v1) update that reads only what a wire doc may hold
// (garbage, skips, deleted runs and binary items) and counts structs, so a
// crafted update of a million tiny items or of foreign content is refused
// before Y.decodeUpdate allocates an object per struct. Everything this
// accepts, Y.decodeUpdate still decodes in full afterwards.

const BIT6 = 32
const BIT7 = 64
const BIT8 = 128
const BITS5 = 31
const CONTENT_DELETED = 1
const CONTENT_BINARY = 3
const GC = 0
const SKIP = 10

/** 'trailing': a valid update with bytes after its delete set (Yjs ignores them). */
export type ScanResult = 'ok' | 'trailing' | 'foreign' | 'too-many'

export function scanWireUpdate(update: Uint8Array, maxStructs: number): ScanResult {
  try {
    const d = decoding.createDecoder(update)
    let structs = 0
    for (let clients = decoding.readVarUint(d); clients > 0; clients--) {
      const n = decoding.readVarUint(d)
      structs += n
      if (structs > maxStructs) return 'too-many'
      decoding.readVarUint(d) // client
      decoding.readVarUint(d) // clock
      for (let i = 0; i < n; i++) {
        const info = decoding.readUint8(d)
        const ref = info & BITS5
        if (ref === GC || ref === SKIP) {
          decoding.readVarUint(d)
          continue
        }
        if (ref !== CONTENT_DELETED && ref !== CONTENT_BINARY) return 'foreign'
        if (info & BIT8) readId(d)
        if (info & BIT7) readId(d)
        if ((info & (BIT7 | BIT8)) === 0) {
          if (decoding.readVarUint(d) === 1) decoding.readVarString(d)
          else readId(d)
          if (info & BIT6) decoding.readVarString(d)
        }
        if (ref === CONTENT_DELETED) decoding.readVarUint(d)
        else skipBytes(d, decoding.readVarUint(d))
      }
    }
    for (let clients = decoding.readVarUint(d); clients > 0; clients--) {
      decoding.readVarUint(d)
      const ranges = decoding.readVarUint(d)
      if (ranges > update.length) return 'foreign' // more ranges than bytes: not an honest update
      for (let i = 0; i < ranges; i++) {
        decoding.readVarUint(d)
        decoding.readVarUint(d)
      }
    }
    return d.pos === update.length ? 'ok' : 'trailing'
  } catch {
    return 'foreign'
  }
}

function readId(d: decoding.Decoder): void {
  decoding.readVarUint(d)
  decoding.readVarUint(d)
}

function skipBytes(d: decoding.Decoder, n: number): void {
  if (d.pos + n > d.arr.length) throw new Error('truncated')
  d.pos += n
}
