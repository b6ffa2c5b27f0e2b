import { describe, expect, it } from 'vitest'
import { qrForTerminal } from './initiate'

describe('qrForTerminal', () => {
  it('renders a resume link as block characters, two rows per line, with a quiet zone', async () => {
    const qr = await qrForTerminal(`kai://resume#kai=${'A'.repeat(400)}`)
    const lines = qr.split('\n')
    expect(qr).toMatch(/[█▀▄]/)
    // Every line as wide as the first; the first is the quiet zone, blank.
    expect(new Set(lines.map((l) => [...l].length)).size).toBe(1)
    expect(lines[0]!.trim()).toBe('')
  })
})
