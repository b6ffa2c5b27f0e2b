// Two devices share one session through a relay that holds no key: a
// laptop streams an agent's reply while a phone, offline on a train, adds a
// message; they reconnect and converge; the laptop compacts; a tablet joins
// late from the snapshot alone. Run: pnpm --filter @kai-sync/engine example
import * as Y from 'yjs'
import { SessionKeyring, WebCryptoDeviceKey, utf8 } from '@kai-sync/crypto'
import { SyncEngine, WireDoc, createSession, transportOrigin } from '@kai-sync/engine'

// The relay: a plain Y.Doc that merges ciphertext. A real one speaks the
// y-websocket protocol; here each device pushes its updates straight to it.
const relay = new Y.Doc()
const online = new Set<Y.Doc>()
function connect(wire: WireDoc): void {
  online.add(wire.doc)
  const fromRelay = transportOrigin('relay')
  Y.applyUpdate(wire.doc, Y.encodeStateAsUpdate(relay, Y.encodeStateVector(wire.doc)), fromRelay)
  Y.applyUpdate(relay, Y.encodeStateAsUpdate(wire.doc, Y.encodeStateVector(relay)), wire)
  wire.doc.on('update', (u: Uint8Array, origin: unknown) => {
    if (origin !== fromRelay && online.has(wire.doc)) Y.applyUpdate(relay, u, wire)
  })
  relay.on('update', (u: Uint8Array, origin: unknown) => {
    if (origin !== wire && online.has(wire.doc)) Y.applyUpdate(wire.doc, u, fromRelay)
  })
}

const laptopKey = await WebCryptoDeviceKey.generate()
const laptop = await createSession({ device: laptopKey, mode: 'desktop', label: 'laptop', agentId: 'assistant', userId: 'ada' })
connect(laptop.wire)

// Enrolling the phone; the session key reaches it by a handoff in real use.
const phoneKey = await WebCryptoDeviceKey.generate()
await laptop.setRole(phoneKey.publicKey, 'writer', { label: 'phone' })
const keys = new SessionKeyring([laptop.keys.current])
const phone = await SyncEngine.open({ sessionId: laptop.sessionId, wire: new WireDoc(), device: phoneKey, keys, mode: 'mobile' })
connect(phone.wire)

laptop.session.appendMessage({ id: 'q1', role: 'user', content: 'Plan a day in Lisbon.' })
laptop.session.startStream({ id: 'a1', role: 'assistant' })
for (const token of ['Morning: ', 'Belém. ', 'Noon: ', 'Alfama. ', 'Evening: ', 'fado.']) {
  laptop.session.streamText('a1', token)
  await new Promise((r) => setTimeout(r, 25))
}
laptop.session.finishStream('a1')
await laptop.whenIdle()
await phone.whenIdle()
console.log(`phone sees the reply: "${phone.session.message('a1')!.content}"`)

online.delete(phone.wire.doc)
phone.session.appendMessage({ id: 'q2', role: 'user', content: 'Add a tram ride, please.' })
await phone.whenIdle()
console.log(`phone offline, wrote q2; laptop has ${laptop.session.messageCount} messages`)
online.add(phone.wire.doc)
Y.applyUpdate(relay, Y.encodeStateAsUpdate(phone.wire.doc, Y.encodeStateVector(relay)), phone.wire)
await laptop.whenIdle()
console.log(`phone back online; laptop has ${laptop.session.messageCount} messages`)

const envelopes = laptop.wire.log.length
await laptop.compact()
await phone.whenIdle()
console.log(`compacted ${envelopes} envelopes into ${laptop.wire.log.length} snapshot`)

const tabletKey = await WebCryptoDeviceKey.generate()
await laptop.setRole(tabletKey.publicKey, 'reader', { label: 'tablet' })
const tabletWire = new WireDoc()
connect(tabletWire)
const tablet = await SyncEngine.open({ sessionId: laptop.sessionId, wire: tabletWire, device: tabletKey, keys, mode: 'tab' })
await tablet.whenIdle()
console.log(`tablet joined late, read-only: ${tablet.session.messages().map((m) => m.id).join(', ')}`)

const relayBytes = Y.encodeStateAsUpdate(relay)
const leaked = ['Lisbon', 'fado', 'tram'].some((w) => Buffer.from(relayBytes).includes(Buffer.from(utf8(w))))
console.log(`relay holds ${relayBytes.length} bytes of ciphertext; plaintext visible to it: ${leaked ? 'YES (bug)' : 'none'}`)
for (const e of [laptop, phone, tablet]) e.destroy()
