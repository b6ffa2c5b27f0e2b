import { expect, it } from 'vitest'
import { createLogger, REDACTED, SECRET_FIELDS, URL_FIELDS } from './log'

// The logger's rules, field by field: the process tests (apps/relay and
// apps/daemon, log-secrets.test.ts) show them on real traffic.

function capture(level: Parameters<typeof createLogger>[0] = 'debug', timeField?: string) {
  const lines: string[] = []
  const log = createLogger(level, (l) => lines.push(l), timeField)
  return { log, lines, entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) }
}

it('writes one JSON object a line with the time, the level by name and msg', () => {
  const { log, lines, entries } = capture('debug', 't')
  log.info('hello', { room: 'r1', n: 3 })
  expect(lines).toHaveLength(1)
  expect(lines[0]!.endsWith('\n')).toBe(true)
  const [entry] = entries()
  expect(entry).toMatchObject({ level: 'info', msg: 'hello', room: 'r1', n: 3 })
  expect(Number.isNaN(Date.parse(entry!.t as string))).toBe(false)
})

it('drops lines below its level', () => {
  const { log, entries } = capture('warn')
  log.debug('d')
  log.info('i')
  log.warn('w')
  log.error('e')
  expect(entries().map((e) => e.level)).toEqual(['warn', 'error'])
})

it('censors every field named for a secret, at the top level and one object down', () => {
  const { log, lines } = capture()
  for (const field of SECRET_FIELDS) {
    const secret = `s3cret-${field}-value`
    log.info('x', { [field]: secret, headers: { [field]: secret } })
    expect(lines.at(-1)).not.toContain(secret)
    expect(lines.at(-1)).toContain(`"${field}":"${REDACTED}"`)
  }
})

it('keeps URLs without their query and fragment', () => {
  const { log, entries } = capture()
  for (const field of URL_FIELDS) log.info('x', { [field]: 'https://kai.example/resume?cap=S1NDAQabc#kai=secret', nested: { [field]: '/room?cap=S1NDAQabc' } })
  for (const e of entries()) {
    const field = Object.keys(e).find((k) => URL_FIELDS.includes(k))!
    expect(e[field]).toBe('https://kai.example/resume')
    expect((e.nested as Record<string, unknown>)[field]).toBe('/room')
  }
})

it('scrubs free text of query strings, fragments and bearer credentials', () => {
  const { log, lines } = capture()
  log.error('request failed', { error: 'fetch http://relay/x?cap=S1NDAQabc failed; link kai://resume#kai=secret; Authorization: Bearer abc.def' })
  expect(lines[0]).not.toMatch(/S1NDAQ|kai=secret|abc\.def/)
  expect(lines[0]).toContain('Bearer <redacted>')
})
