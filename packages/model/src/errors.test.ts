import { describe, expect, it } from 'vitest'
import { KaiError } from './errors'

describe('KaiError.fromJSON', () => {
  it('names the code once, however many processes relayed the error', () => {
    const relay = new KaiError('already_used', 'this handoff link was used already').toJSON()
    const daemon = KaiError.fromJSON(relay, 'the relay answered 409').toJSON()
    expect(daemon).toEqual({ code: 'already_used', message: 'already_used: this handoff link was used already' })
    expect(KaiError.fromJSON(daemon, 'the daemon answered 409').message).toBe('already_used: this handoff link was used already')
  })

  it('keeps a detail that merely starts like a code, and makes an unknown code internal', () => {
    expect(KaiError.fromJSON({ code: 'expired', message: 'note: the clock is behind' }, 'x').message).toBe('expired: note: the clock is behind')
    expect(KaiError.fromJSON({ code: 'nonsense', message: 'nonsense: what' }, 'x').code).toBe('internal')
    expect(KaiError.fromJSON(null, 'the relay answered 502')).toMatchObject({ code: 'internal', message: 'internal: the relay answered 502' })
  })
})
