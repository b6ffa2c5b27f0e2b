import { describe, expect, it } from 'vitest'
import { canonicalJson, mergeConcurrent } from './json-merge'

describe('mergeConcurrent', () => {
  it('keeps what each of two devices added to a list', () => {
    const base = ['search']
    const merged = mergeConcurrent([
      { value: ['search', 'code'], replaced: [base] },
      { value: ['search', 'browse'], replaced: [base] },
    ])
    expect(merged).toEqual(['search', 'browse', 'code'])
  })

  it('does not bring back an element one device removed while another added one', () => {
    const base = ['search', 'code']
    const merged = mergeConcurrent([
      { value: ['code'], replaced: [base] },
      { value: ['search', 'code', 'browse'], replaced: [base] },
    ])
    expect(merged).toEqual(['code', 'browse'])
  })

  it('keeps an element removed by one device and added back by another at once (add wins)', () => {
    const merged = mergeConcurrent([
      { value: [], replaced: [['x']] },
      { value: ['x'], replaced: [[]] },
    ])
    expect(merged).toEqual(['x'])
  })

  it('merges objects key by key, each change surviving, against the writers bases', () => {
    const base = { a: 1, b: 1, gone: true }
    const merged = mergeConcurrent([
      { value: { a: 2, b: 1, gone: true }, replaced: [base] },
      { value: { a: 1, b: 2, added: 'x' }, replaced: [base] },
    ])
    expect(merged).toEqual({ a: 2, b: 2, added: 'x' })
  })

  it('picks the latest write for values that cannot merge', () => {
    expect(mergeConcurrent([{ value: 'model-a' }, { value: 'model-b' }])).toBe('model-b')
    expect(mergeConcurrent([{ value: ['list'] }, { value: 'text' }])).toBe('text')
  })

  it('does not depend on the order a write lists its bases in', () => {
    // a saw {x} and {z} and dropped z; b saw the same two and added w.
    const a = { value: ['x', 'y'], replaced: [['x'], ['z']] }
    const b = { value: ['x', 'z', 'w'], replaced: [['z'], ['x']] }
    const swapped = { ...a, replaced: [['z'], ['x']] }
    expect(mergeConcurrent([a, b])).toEqual(['x', 'w', 'y'])
    expect(mergeConcurrent([swapped, b])).toEqual(['x', 'w', 'y'])
  })
})

describe('canonicalJson', () => {
  it('gives equal objects equal strings whatever their key order', () => {
    expect(canonicalJson({ b: [1, { d: 1, c: 2 }], a: null })).toBe(canonicalJson({ a: null, b: [1, { c: 2, d: 1 }] }))
    expect(canonicalJson({ a: 1 })).not.toBe(canonicalJson({ a: '1' }))
  })
})
