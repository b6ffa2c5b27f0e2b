import { expect, it } from 'vitest'
import { spawnChild, waitForListening } from './index'

const node = (script: string) => spawnChild(process.execPath, ['-e', script])

it('waits for a line on either stream and keeps every line', async () => {
  const child = node(`console.log('one'); console.error('two'); setTimeout(() => console.log('three'), 50)`)
  expect(await child.waitFor((l) => l === 'three')).toBe('three')
  expect(await child.exited).toBe(0)
  expect(child.stdout).toEqual(['one', 'three'])
  expect(child.stderr).toEqual(['two'])
  // A line already seen is found at once.
  expect(await child.waitFor((l) => l === 'two')).toBe('two')
})

it('says what it waited for, with the output, when the child exits first or time runs out', async () => {
  const exits = node(`console.error('no such thing'); process.exit(3)`)
  await expect(exits.waitFor((l) => l === 'ready', 5000, 'the ready line')).rejects.toThrow(/exited with 3 before the ready line[\s\S]*no such thing/)
  const silent = node(`setTimeout(() => {}, 10000)`)
  await expect(silent.waitFor((l) => l === 'ready', 100, 'the ready line')).rejects.toThrow(/timed out waiting for the ready line/)
  expect(await silent.stop()).toBe(null) // ended by SIGTERM
})

it('reads the port (and url) from a server\'s JSON listening line, skipping other lines', async () => {
  const child = node(`console.error('{"msg":"starting"}'); console.error('not json'); console.error(JSON.stringify({ msg: 'listening', port: 4321, url: 'http://127.0.0.1:4321' })); setTimeout(() => {}, 10000)`)
  expect(await waitForListening(child, 5000)).toEqual({ port: 4321, url: 'http://127.0.0.1:4321' })
  await child.kill9()
})
