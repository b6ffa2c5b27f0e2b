import { describe, expect, it } from 'vitest'
import { KaiError } from './errors'
import { AgentConfigSchema, MessageSchema, parseInput } from './schemas'
import { HandoffResponseSchema, SessionDeltaSchema } from './rest-schemas'

// The schemas are zod's mini build, which on its own says only "Invalid
// input". This file loads nothing but them (no classic zod, which would load
// the English messages for everyone), as the web app does.

function refusal(run: () => unknown): KaiError {
  try {
    run()
  } catch (e) {
    return e as KaiError
  }
  throw new Error('expected a refusal')
}

describe('parseInput with the shared schemas', () => {
  it('refuses bad input with invalid_input, saying in words what was wrong where', () => {
    const e = refusal(() => parseInput(MessageSchema, { id: 'm1', role: 'someone', content: 3, timestamp: 1.5 }, 'message'))
    expect(e).toBeInstanceOf(KaiError)
    expect(e.code).toBe('invalid_input')
    expect(e.message).toBe(
      'invalid_input: message: role: Invalid option: expected one of "user"|"assistant"|"system"|"tool"; content: Invalid input: expected string, received number; timestamp: Invalid input: expected int, received number',
    )
    expect(refusal(() => parseInput(AgentConfigSchema, { model: '', temperature: 3 }, 'config')).message).toBe(
      'invalid_input: config: model: Too small: expected string to have >=1 characters; temperature: Too big: expected number to be <=2',
    )
  })

  it('fills the defaults and keeps an agent\'s own settings', () => {
    expect(parseInput(MessageSchema, { id: 'm1', role: 'user', content: 'hi', timestamp: 1 }, 'message').status).toBe('complete')
    const delta = parseInput(SessionDeltaSchema, { session_id: 's', device_id: 'd', mode: 'tab', timestamp: 1, config: { top_k: 5 } }, 'delta')
    expect(delta.config).toEqual({ top_k: 5 })
  })

  it('refuses a handoff answer whose resume link is not a URL, in words (the REST bodies are their own entry, rest-schemas.ts)', () => {
    const answer = { handoff_token: 't', qr_code: { svg: '<svg/>', data_url: 'data:,' }, resume_url: 'https://app.example/#kai=x', expires_at: 1, instructions: 'Scan it' }
    expect(parseInput(HandoffResponseSchema, answer, 'handoff').resume_url).toBe('https://app.example/#kai=x')
    expect(refusal(() => parseInput(HandoffResponseSchema, { ...answer, resume_url: 'not a link' }, 'handoff')).message).toBe('invalid_input: handoff: resume_url: Invalid URL')
  })
})
