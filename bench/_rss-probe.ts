// Not a benchmark (run-all skips files starting with _): a relay's memory
// at four moments, read from /proc: idle, with 100 rooms x 2 clients
// connected, after 7 s at 250 msg/s, after a 5 s closed loop. For the
// stock relay, kai-relay as it ships (its bin), and kai-relay's sources
// through tsx's loader (as the tests run them).
//
//   [ONLY=stock,kai,kai-tsx] node_modules/.bin/tsx bench/_rss-probe.ts
import { readFileSync } from 'node:fs'
import { Load } from './relay/load'
import { createBenchRoom } from './relay/frames'
import { startKaiRelay, startStockRelay, type BenchServer } from './relay/servers'

function memory(pid: number): string {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const mb = (field: string) => (Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024).toFixed(0)
  return `rss ${mb('VmRSS')} MB (anon ${mb('RssAnon')}, file ${mb('RssFile')})`
}

const servers: Array<[string, () => Promise<BenchServer>]> = [
  ['stock', () => startStockRelay()],
  ['kai', () => startKaiRelay({ verify: true })],
  ['kai-tsx', () => startKaiRelay({ verify: true, tsx: true })],
]
const only = process.env.ONLY?.split(',')
for (const [name, start] of servers) {
  if (only && !only.includes(name)) continue
  const server = await start()
  try {
    await new Promise((r) => setTimeout(r, 1000))
    console.log(`${name} idle: ${memory(server.pid)}`)
    const rooms = await Promise.all(Array.from({ length: 100 }, () => createBenchRoom()))
    const load = await Load.connect(server, rooms)
    try {
      console.log(`${name} connected: ${memory(server.pid)}`)
      await load.prepare(load.framesFor(250, 7))
      await load.openLoop(250, 7)
      console.log(`${name} after 7 s at 250 msg/s: ${memory(server.pid)}`)
      await load.prepare(load.framesFor(25_000, 5))
      const closed = await load.closedLoop(8, 5)
      console.log(`${name} after a closed loop (${closed.deliveredPerSecond} msg/s): ${memory(server.pid)}`)
    } finally {
      load.close()
    }
  } finally {
    await server.stop()
  }
}
