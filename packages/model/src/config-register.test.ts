import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { SessionDoc } from './session-doc'

function exchange(a: SessionDoc, b: SessionDoc): void {
  const ua = Y.encodeStateAsUpdate(a.doc, Y.encodeStateVector(b.doc))
  const ub = Y.encodeStateAsUpdate(b.doc, Y.encodeStateVector(a.doc))
  Y.applyUpdate(b.doc, ua, 'remote')
  Y.applyUpdate(a.doc, ub, 'remote')
}

describe('ConfigRegister', () => {
  it('keeps both concurrent writes of two tabs of one device whose clocks tick to the same value', () => {
    // Same device id, same wall clock: both clocks give the same hlc.
    const tab1 = new SessionDoc({ device: 'dev', mode: 'tab', now: () => 1000 })
    const tab2 = new SessionDoc({ device: 'dev', mode: 'sidepanel', now: () => 1000 })
    const w1 = tab1.setConfig('model', 'from-tab')
    const w2 = tab2.setConfig('model', 'from-panel')
    expect(w1.hlc).toBe(w2.hlc)
    exchange(tab1, tab2)
    const heads1 = tab1.configRegister.heads('model').map((w) => w.value)
    expect(heads1).toHaveLength(2)
    expect(heads1).toEqual(expect.arrayContaining(['from-tab', 'from-panel']))
    // Equal clocks are ordered the same way on both replicas.
    expect(tab2.configRegister.heads('model').map((w) => w.value)).toEqual(heads1)
  })

  it('records the list a write replaced, as the base the merge policy diffs against', () => {
    const d = new SessionDoc({ device: 'a', mode: 'tab' })
    d.setConfig('tools', ['search'])
    d.setConfig('tools', ['search', 'code'])
    d.setConfig('model', 'm1')
    d.setConfig('model', 'm2')
    expect(d.configRegister.heads('tools')).toMatchObject([{ value: ['search', 'code'], replaced: [['search']] }])
    // Scalars carry no base: nothing merges them.
    expect(d.configRegister.heads('model')[0]!.replaced).toBeUndefined()
  })
})
