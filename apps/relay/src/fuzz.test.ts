import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import * as prng from 'lib0/prng'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { spawnRelay, type RelayProcess } from './testing/relay-process'
import { capability, closeDevice, eventually, memberDevice, ownerDevice, rawClient, updateFrame, type Device } from './testing/clients'
import { craftUpdate, sealedBy } from './testing/forge'

// At least 10,000 random and mutated frames against one relay: it stays up,
// its memory stays bounded, and two well-behaved devices in another room
// keep syncing throughout. KAI_RELAY_FUZZ_FRAMES raises the count; the
// seed is printed so a failure can be replayed with KAI_RELAY_FUZZ_SEED.

const FRAMES = Number(process.env.KAI_RELAY_FUZZ_FRAMES ?? 10_000)
const SEED = Number(process.env.KAI_RELAY_FUZZ_SEED ?? Date.now() % 1_000_000)
const PARALLEL = 8

let relay: RelayProcess
let victim: Device
beforeAll(async () => {
  relay = await spawnRelay(['--pre-auth-timeout-ms', '2000'])
})
afterAll(async () => {
  await relay.stop()
  relay.cleanup()
})

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? 0)
}

/** Valid frames of a real session, to mutate: sync steps, envelopes, roster entries, awareness. */
async function seedFrames(d: Device): Promise<Uint8Array[]> {
  const frames: Uint8Array[] = [new Uint8Array([0, 0, 1, 0]), new Uint8Array([3]), new Uint8Array([1, 10, 1, 200, 1, 1, 5, 123, 34, 97, 34, 125])]
  for (let i = 0; i < 4; i++) {
    const env = await sealedBy(d.key, d.engine.sessionId, d.engine.keys.current, new Uint8Array(40 + i * 30))
    frames.push(updateFrame(craftUpdate(d.wire.doc, (w) => w.append([env], null))))
  }
  frames.push(updateFrame(craftUpdate(d.wire.doc, (w) => w.addRosterEntries([new Uint8Array(120).fill(7)], null))))
  frames.push(updateFrame(craftUpdate(d.wire.doc, (w) => w.log.delete(0, 1))))
  return frames
}

function mutate(gen: prng.PRNG, frames: Uint8Array[]): Uint8Array {
  const kind = prng.int32(gen, 0, 5)
  if (kind === 0) return prng.uint8Array(gen, prng.int32(gen, 0, 300)) // pure noise
  const base = frames[prng.int32(gen, 0, frames.length - 1)]!.slice()
  if (kind === 1) {
    for (let n = prng.int32(gen, 1, 8); n > 0; n--) base[prng.int32(gen, 0, base.length - 1)] = prng.uint32(gen, 0, 255)
    return base
  }
  if (kind === 2) return base.subarray(0, prng.int32(gen, 0, base.length - 1))
  if (kind === 3) return new Uint8Array([...base, ...prng.uint8Array(gen, prng.int32(gen, 1, 40))])
  if (kind === 4) {
    // Huge varints where lengths are read.
    const at = prng.int32(gen, 0, base.length - 1)
    base.set([0xff, 0xff, 0xff, 0xff, 0x0f].slice(0, base.length - at), at)
    return base
  }
  const at = prng.int32(gen, 0, base.length - 1)
  return new Uint8Array([...base.subarray(0, at), ...base.subarray(at + prng.int32(gen, 1, 10))])
}

/** Raw TCP garbage: broken HTTP and broken WebSocket framing. */
function garbageSocket(port: number, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.end(bytes))
    s.on('error', () => resolve())
    s.on('close', () => resolve())
    s.setTimeout(3000, () => s.destroy())
  })
}

it(`stays up and bounded under ${FRAMES} random and mutated frames, while others keep syncing (seed ${SEED})`, async () => {
  const gen = prng.create(SEED)
  victim = await ownerDevice(relay.url)
  const peer = await memberDevice(relay.url, victim)
  const fuzzer = await ownerDevice(relay.url)
  await fuzzer.relay.whenAcknowledged()
  const frames = await seedFrames(fuzzer)
  const room = fuzzer.engine.sessionId
  const rssBefore = rssKb(relay.child.pid!)

  // The well-behaved pair writes all along.
  let chatted = 0
  let fuzzing = true
  const chat = (async () => {
    while (fuzzing) {
      ;(chatted % 2 ? victim : peer).engine.session.appendMessage({ id: `ok${chatted}`, role: 'user', content: `still fine ${chatted}` })
      chatted++
      await new Promise((r) => setTimeout(r, 20))
    }
  })()

  let sent = 0
  const worker = async () => {
    while (sent < FRAMES) {
      const client = await rawClient(relay.url, room, await capability(fuzzer.key, room))
      // A burst of frames per connection; most close it at the first one.
      for (let i = prng.int32(gen, 1, 4); i > 0 && sent < FRAMES && client.ws.readyState === client.ws.OPEN; i--) {
        client.send(mutate(gen, frames))
        sent++
      }
      await Promise.race([client.closed, new Promise((r) => setTimeout(r, 50))])
      client.ws.terminate()
    }
  }
  const garbage = Array.from({ length: 200 }, () => garbageSocket(relay.port, prng.uint8Array(gen, prng.int32(gen, 1, 200))))
  await Promise.all([...Array.from({ length: PARALLEL }, worker), ...garbage])
  fuzzing = false
  await chat

  expect(sent).toBeGreaterThanOrEqual(FRAMES)
  const health = await fetch(`${relay.httpUrl}/healthz`)
  expect(health.status).toBe(200)
  await eventually(
    () => victim.engine.session.messageIds().length === chatted && peer.engine.session.messageIds().length === chatted,
    20_000,
    'the well-behaved devices to converge',
  )
  expect(victim.relay.provider.wsconnected && peer.relay.provider.wsconnected).toBe(true)
  const rssAfter = rssKb(relay.child.pid!)
  // Bounded: tens of MB of churn at most, not a leak per frame.
  expect(rssAfter - rssBefore, `RSS ${rssBefore} kB -> ${rssAfter} kB`).toBeLessThan(200 * 1024)
  expect(relay.child.exitCode).toBeNull()
  // The frames reached the checks, not just the socket: most were refused, by code.
  const metrics = await (await fetch(`${relay.httpUrl}/metrics`)).text()
  const refused = [...metrics.matchAll(/kai_relay_rejections_total\{code="(\d+)"\} (\d+)/g)].map((m) => [m[1], Number(m[2])] as const)
  console.log(`fuzz seed ${SEED}: RSS ${rssBefore} -> ${rssAfter} kB; refusals ${refused.map(([c, n]) => `${c}: ${n}`).join(', ')}`)
  expect(refused.reduce((n, [, k]) => n + k, 0)).toBeGreaterThan(FRAMES / 4)
  closeDevice(victim)
  closeDevice(peer)
  closeDevice(fuzzer)
}, 240_000)
