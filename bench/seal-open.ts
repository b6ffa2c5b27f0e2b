// Seal + open of a 1 KB update, with the WebCrypto Ed25519 key and verifier
// (OpenSSL underneath in Node) against the portable @noble/ed25519 ones.
// AES-256-GCM is WebCrypto in both. Per-envelope medians over batches.
import {
  SessionKey,
  SessionKeyring,
  WebCryptoDeviceKey,
  ZERO_HASH,
  newStreamId,
  openEnvelope,
  randomBytes,
  sealEnvelope,
  verifyEnvelope,
  webCryptoVerifier,
  type DeviceKey,
  type Envelope,
  type SignatureVerifier,
} from '@kai-sync/crypto'
import { NobleDeviceKey, nobleVerifier } from '@kai-sync/crypto/noble'
import { fmt, median, now, table } from './lib'

const plaintext = randomBytes(1024)
const key = await SessionKey.generate(0)
const keys = new SessionKeyring([key])
const stream = newStreamId()

function seal(signer: DeviceKey): Promise<Envelope> {
  return sealEnvelope({
    header: { kind: 'update', sessionId: 'bench-session', stream, seq: 1, prev: ZERO_HASH, createdAt: Date.now(), clientIds: [1], covers: [] },
    plaintext,
    key,
    signer,
  })
}

async function open(env: Envelope, verifier: SignatureVerifier): Promise<void> {
  await verifyEnvelope(env, verifier)
  await openEnvelope(env, keys)
}

/** Per-operation µs: run `batches` batches of `inFlight` concurrent ops. */
async function perOp(inFlight: number, batches: number, op: () => Promise<unknown>): Promise<number> {
  const samples: number[] = []
  for (let b = 0; b < batches + 3; b++) {
    const t = now()
    await Promise.all(Array.from({ length: inFlight }, op))
    if (b >= 3) samples.push(((now() - t) * 1000) / inFlight)
  }
  return median(samples)
}

const impls: Array<[string, DeviceKey, SignatureVerifier, number]> = [
  ['WebCrypto (node crypto)', await WebCryptoDeviceKey.generate(), webCryptoVerifier(), 400],
  ['@noble/ed25519', await NobleDeviceKey.generate(), nobleVerifier, 60],
]
const rows: string[][] = []
for (const [name, signer, verifier, batches] of impls) {
  const env = await seal(signer)
  for (const inFlight of [1, 16]) {
    const sealUs = await perOp(inFlight, Math.ceil(batches / inFlight) * 4, () => seal(signer))
    const openUs = await perOp(inFlight, Math.ceil(batches / inFlight) * 4, () => open(env, verifier))
    rows.push([`${name}, ${inFlight} in flight`, fmt(sealUs, 'µs'), fmt(openUs, 'µs'), fmt(sealUs + openUs, 'µs')])
  }
}
table('Seal + open of a 1 KB update (median per envelope)', ['implementation', 'seal', 'open (verify + decrypt)', 'round trip'], rows)
