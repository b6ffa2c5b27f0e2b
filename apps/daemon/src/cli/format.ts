import type { ConflictInfo, Message, SessionRecord } from '@kai-sync/model'

// Readable output for people; `--json` prints the API's JSON instead.

export function shortId(id: string): string {
  return id.length > 12 ? `${id.slice(0, 10)}…` : id
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19)
}

export function messageHeader(m: Message): string {
  const who = m.author ? ` ${shortId(m.author)}` : ''
  return `[${clock(m.timestamp)}] ${m.role}${who}${m.mode ? ` (${m.mode})` : ''}: `
}

export function formatMessage(m: Message): string {
  const ending = m.status === 'streaming' ? ' …' : m.status === 'complete' ? '' : `  [${m.status}${m.error ? `: ${m.error.code}` : ''}]`
  return `${messageHeader(m)}${m.content}${ending}`
}

export function formatConflicts(conflicts: ConflictInfo[]): string {
  if (conflicts.length === 0) return 'no conflicts'
  return conflicts
    .map((c) => {
      const values = c.values.map((v) => `    ${JSON.stringify(v.value)}  from ${shortId(v.device_id)}${v.mode ? ` (${v.mode})` : ''} at ${new Date(v.timestamp).toISOString()}`)
      return [`${c.field}  policy ${c.policy}, showing ${JSON.stringify(c.visible)}`, ...values].join('\n')
    })
    .join('\n')
}

export function formatRecord(r: SessionRecord, lastMessages = 20): string {
  const lines = [
    `session  ${r.session_id}`,
    `agent    ${r.agent_id}    user ${r.user_id}`,
    `created  ${new Date(r.created_at).toISOString()}    updated ${new Date(r.updated_at).toISOString()}`,
    `config   ${Object.entries(r.config).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join('  ')}`,
  ]
  if (r.conflicts.length > 0) lines.push('', `conflicts (${r.conflicts.length}):`, formatConflicts(r.conflicts))
  const shown = r.messages.slice(-lastMessages)
  lines.push('', `messages (${r.messages.length}${shown.length < r.messages.length ? `, last ${shown.length}` : ''}):`)
  for (const m of shown) lines.push(formatMessage(m))
  return lines.join('\n')
}

/** Aligned columns, for `kai list` and friends. */
export function table(rows: string[][]): string {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n')
}

export interface DeviceList {
  devices: Array<{ device: string; role: string; label: string; this_device: boolean; mode?: string; last_seen?: number }>
  invites: Array<{ invite: string; transfer: string; label: string; expires_at: number }>
}

/** `kai devices`: the roster as a table, this device marked, then the pending invites. */
export function formatDevices(list: DeviceList): string {
  const rows = [['DEVICE', 'LABEL', 'MODE', 'ROLE', 'LAST SEEN', '']]
  for (const d of list.devices) {
    rows.push([d.device, d.label, d.mode ?? '-', d.role, d.last_seen ? new Date(d.last_seen).toISOString() : '-', d.this_device ? '(this device)' : ''])
  }
  const out = [table(rows)]
  if (list.invites.length === 0) out.push('', 'no pending invites')
  else out.push('', 'pending invites:', table([['INVITE', 'TRANSFER', 'EXPIRES'], ...list.invites.map((i) => [i.invite, i.transfer, new Date(i.expires_at).toISOString()])]))
  return out.join('\n')
}
