// Whether 32 bytes are the canonical encoding of a point on edwards25519
// (RFC 8032 §5.1.3), without a curve library: the browser checks every
// signer's key with it before WebCrypto's native verify, and carrying
// noble's point arithmetic for this one decode would put it in every
// page's first load. ed25519-point.test.ts holds it to noble's strict
// decoding (Point.fromBytes without zip215) on crafted and random inputs.

const P = 2n ** 255n - 19n
// d = -121665 / 121666 mod p
const D = 37095705934669439343138083508754565189542113879843219016388785533085940283555n
// sqrt(-1) mod p = 2^((p - 1) / 4)
const SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752n
const Y_MASK = 2n ** 255n - 1n

function mod(a: bigint): bigint {
  const r = a % P
  return r < 0n ? r + P : r
}

/** x^(2^k) mod p: k squarings. */
function pow2(x: bigint, k: number): bigint {
  let r = x
  for (let i = 0; i < k; i++) r = (r * r) % P
  return r
}

/**
 * x^((p - 5) / 8) = x^(2^252 - 3), by the addition chain ref10 and noble
 * use (about 250 squarings, a dozen products): square-and-multiply would take
 * twice as long (about 150 µs a key here, against 60), and a relay checks
 * every new signer's key.
 */
function powP58(x: bigint): bigint {
  const b2 = (x * x * x) % P // x^3
  const b4 = (pow2(b2, 2) * b2) % P // x^15
  const b5 = (pow2(b4, 1) * x) % P // x^31
  const b10 = (pow2(b5, 5) * b5) % P
  const b20 = (pow2(b10, 10) * b10) % P
  const b40 = (pow2(b20, 20) * b20) % P
  const b80 = (pow2(b40, 40) * b40) % P
  const b160 = (pow2(b80, 80) * b80) % P
  const b240 = (pow2(b160, 80) * b80) % P
  const b250 = (pow2(b240, 10) * b10) % P
  return (pow2(b250, 2) * x) % P
}

/**
 * True when `bytes` decode to a point as strict RFC 8032 decoding does:
 * y < p, x² = (y² - 1) / (d·y² + 1) has a root, and the sign bit is not
 * set for x = 0 (whose only encoding has it clear).
 */
export function isCanonicalPoint(bytes: Uint8Array): boolean {
  if (bytes.length !== 32) return false
  let n = 0n
  for (let i = 31; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!)
  const sign = n >> 255n
  const y = n & Y_MASK
  if (y >= P) return false
  const y2 = (y * y) % P
  const u = mod(y2 - 1n)
  const v = mod(D * y2 + 1n)
  // The candidate root x = u·v³·(u·v⁷)^((p - 5) / 8), then v·x² = ±u decides.
  const v3 = (v * v * v) % P
  let x = (u * v3 * powP58((u * v3 * ((v3 * v) % P)) % P)) % P
  const vx2 = (v * x * x) % P
  if (vx2 === mod(-u)) x = (x * SQRT_M1) % P
  else if (vx2 !== u) return false
  return !(x === 0n && sign === 1n)
}
