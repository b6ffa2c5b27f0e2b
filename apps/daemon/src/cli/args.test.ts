import { describe, expect, it } from 'vitest'
import { parseCommandArgs } from './args'

// Regression: `kai append -fr9Yx… text` failed with "Unknown option '-f'"
// for the one session id in 64 that starts with a dash.
describe('parseCommandArgs', () => {
  const options = { role: { type: 'string', default: 'user' }, last: { type: 'string', short: 'n' }, stream: { type: 'boolean' } } as const

  it('takes a session id that starts with a dash as a positional', () => {
    const { positionals, values } = parseCommandArgs(['-fr9YxRyDXaTJMOBhyPTOw', 'hello', '--role', 'assistant', 'world'], options)
    expect(positionals).toEqual(['-fr9YxRyDXaTJMOBhyPTOw', 'hello', 'world'])
    expect(values.role).toBe('assistant')
  })

  it('still reads short options, --name=value and everything after --', () => {
    const { positionals, values } = parseCommandArgs(['s1', '-n', '5', '--role=tool', '--stream', '--', '--role'], options)
    expect(positionals).toEqual(['s1', '--role'])
    expect(values).toMatchObject({ last: '5', role: 'tool', stream: true })
  })

  // Regression (CI, 2026-12-05): `kai device add <s> --HtQ9o… <box>` failed
  // with "Unknown option" for the one key in 4,096 that starts with two dashes.
  it('takes an id or key that starts with two dashes as a positional', () => {
    const key = '--HtQ9o-giWNYID9iUIXc7HTGXjUC8xzD2eTe6Of_jw'
    const id = '--fr9YxRyDXaTJMOBhyPTO'
    const { positionals, values } = parseCommandArgs([id, key, 'box', '--role', 'reader'], options)
    expect(positionals).toEqual([id, key, 'box'])
    expect(values.role).toBe('reader')
  })

  it('refuses an unknown --option', () => {
    expect(() => parseCommandArgs(['s1', '--bogus'], options)).toThrow(/Unknown option '--bogus'/)
    expect(() => parseCommandArgs(['s1', '--a-long-misspelt-option'], options)).toThrow(/Unknown option/)
  })
})
