import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { parseCommandArgs } from './args'
import { KaiError, type ConflictInfo, type HandoffResponse, type Json, type Message, type SessionRecord } from '@kai-sync/model'
import { parseResumeLink, qrForTerminal } from '@kai-sync/handoff'
import type { DaemonClient } from './daemon-client'
import { formatConflicts, formatDevices, formatRecord, shortId, table, type DeviceList } from './format'
import { tail } from './tail'

// The `kai` commands that talk to a running daemon over its REST API.

export interface CliContext {
  client(): DaemonClient
  json: boolean
  out(text: string): void
  /** Standard input, for `append` without text. */
  stdin: NodeJS.ReadableStream & { isTTY?: boolean }
  /** Aborted on Ctrl-C, so `tail` ends cleanly. */
  signal: AbortSignal
}

export type Command = (ctx: CliContext, argv: string[]) => Promise<void>

const sid = (id: string) => `/session/${encodeURIComponent(id)}`

function usage(text: string): never {
  throw new KaiError('invalid_input', `usage: kai ${text}`)
}

/** A config value as typed: JSON if it parses (0.3, true, ["a"]), else the text itself. */
export function parseValue(text: string): Json {
  try {
    return JSON.parse(text) as Json
  } catch {
    return text
  }
}

function print(ctx: CliContext, json: unknown, readable: () => string): void {
  ctx.out(ctx.json ? JSON.stringify(json, null, 2) + '\n' : readable() + '\n')
}

const create: Command = async (ctx, argv) => {
  const { values } = parseArgs({ args: argv, options: { agent: { type: 'string', default: 'assistant' }, user: { type: 'string', default: process.env.USER ?? 'user' } } })
  const record = await ctx.client().post<SessionRecord>('/sessions', { agent_id: values.agent, user_id: values.user })
  print(ctx, record, () => record.session_id)
}

/** "0", or "3 (gap 2, wrong_epoch 1)". */
function byCode(total: unknown, counts: unknown): string {
  const entries = Object.entries((counts ?? {}) as Record<string, number>)
  return entries.length === 0 ? String(total ?? 0) : `${String(total)} (${entries.map(([code, n]) => `${code} ${n}`).join(', ')})`
}

const list: Command = async (ctx) => {
  const { sessions } = await ctx.client().get<{ sessions: Array<Record<string, unknown>> }>('/sessions')
  print(ctx, { sessions }, () => {
    if (sessions.length === 0) return 'no sessions yet: kai create'
    const rows = [['SESSION', 'AGENT', 'MESSAGES', 'ROLE', 'SYNC', 'HELD', 'REFUSED', 'RELAY', 'UPDATED']]
    for (const s of sessions) {
      rows.push([
        String(s.session_id),
        String(s.agent_id ?? '-'),
        String(s.messages ?? '-'),
        String(s.role ?? '-'),
        s.ready ? String(s.sync) : 'waiting for key',
        byCode(s.held, s.held_by),
        byCode(s.refused, s.refused_by),
        String(s.relay),
        typeof s.updated_at === 'number' ? new Date(s.updated_at).toISOString() : '-',
      ])
    }
    return table(rows)
  })
}

const show: Command = async (ctx, argv) => {
  const { positionals, values } = parseCommandArgs(argv, { last: { type: 'string', short: 'n', default: '20' } })
  const [id] = positionals
  if (!id) usage('show <session> [-n 20]')
  const record = await ctx.client().get<SessionRecord>(sid(id))
  print(ctx, record, () => formatRecord(record, Number(values.last)))
}

const append: Command = async (ctx, argv) => {
  const { positionals, values } = parseCommandArgs(argv, { role: { type: 'string', default: 'user' }, id: { type: 'string' }, stream: { type: 'boolean', default: false } })
  const [id, ...words] = positionals
  if (!id) usage('append <session> [text…] [--role user] [--id ID] [--stream]   (no text: read standard input)')
  const client = ctx.client()
  const base = { role: values.role, ...(values.id ? { id: values.id } : {}) }
  if (values.stream) {
    // Streams standard input into one message as it arrives.
    let message = await client.post<Message>(`${sid(id)}/messages`, { ...base, content: words.join(' '), status: 'streaming' })
    for await (const chunk of ctx.stdin) {
      const text = chunk.toString()
      if (text) message = await client.post<Message>(`${sid(id)}/messages/${encodeURIComponent(message.id)}/stream`, { text })
    }
    message = await client.post<Message>(`${sid(id)}/messages/${encodeURIComponent(message.id)}/stream`, { done: true })
    print(ctx, message, () => message.id)
    return
  }
  let content = words.join(' ')
  if (words.length === 0) {
    if (ctx.stdin.isTTY) usage('append <session> <text…>   (or pipe the text into it)')
    const chunks: string[] = []
    for await (const chunk of ctx.stdin) chunks.push(chunk.toString())
    content = chunks.join('').replace(/\n$/, '')
  }
  const message = await client.post<Message>(`${sid(id)}/messages`, { ...base, content })
  print(ctx, message, () => message.id)
}

const tailCommand: Command = async (ctx, argv) => {
  const { positionals, values } = parseCommandArgs(argv, { last: { type: 'string', short: 'n', default: '10' }, 'no-follow': { type: 'boolean', default: false } })
  const [id] = positionals
  if (!id) usage('tail <session> [-n 10] [--no-follow]')
  await tail(ctx.client(), id, { last: Number(values.last), follow: !values['no-follow'], json: ctx.json, write: ctx.out, signal: ctx.signal })
}

const config: Command = async (ctx, argv) => {
  const [sub, id, field, value] = argv
  if (sub === 'set') {
    if (!id || !field || value === undefined) usage('config set <session> <field> <value>')
    const view = await ctx.client().patch<{ config: Record<string, Json>; conflicts: ConflictInfo[] }>(`${sid(id)}/config`, { [field]: parseValue(value) })
    print(ctx, view, () => `${field} = ${JSON.stringify(view.config[field])}`)
    return
  }
  if (sub === 'show' && id) {
    const record = await ctx.client().get<SessionRecord>(sid(id))
    print(ctx, { config: record.config, conflicts: record.conflicts }, () => Object.entries(record.config).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join('\n'))
    return
  }
  usage('config set <session> <field> <value> | config show <session>')
}

const conflicts: Command = async (ctx, argv) => {
  if (argv[0] === 'resolve') {
    const [, id, field, value] = argv
    if (!id || !field || value === undefined) usage('conflicts resolve <session> <field> <value>')
    const name = field.startsWith('config.') || field.startsWith('message.') ? field : `config.${field}`
    const result = await ctx.client().post<{ conflicts: ConflictInfo[] }>(`${sid(id)}/conflicts/resolve`, { field: name, value: parseValue(value) })
    print(ctx, result, () => `resolved ${name}; ${formatConflicts(result.conflicts)}`)
    return
  }
  const [id] = argv
  if (!id) usage('conflicts <session> | conflicts resolve <session> <field> <value>')
  const result = await ctx.client().get<{ conflicts: ConflictInfo[] }>(`${sid(id)}/conflicts`)
  print(ctx, result, () => formatConflicts(result.conflicts))
}

const handoff: Command = async (ctx, argv) => {
  const { positionals, values } = parseCommandArgs(argv, { to: { type: 'string', default: 'mobile' }, type: { type: 'string', default: 'mirror' } })
  const [id] = positionals
  if (!id) usage('handoff <session> [--to mobile|desktop|tab|popup|sidepanel|headless] [--type mirror|takeover|observe]')
  const intent = { session_id: id, source_mode: 'headless', target_mode: values.to, transfer_type: values.type }
  const response = await ctx.client().post<HandoffResponse>(`${sid(id)}/handoff`, intent)
  if (ctx.json) return print(ctx, response, () => '')
  const qr = await qrForTerminal(response.resume_url)
  ctx.out(`${qr}\n${response.instructions}\n\n${response.resume_url}\n\nexpires ${new Date(response.expires_at).toISOString()}\n`)
}

const RESUME_USAGE = 'resume - | --file PATH | \'<link>\' [--label NAME]   (- reads the link from stdin)'

/**
 * `kai resume -` reads the link from stdin and `--file` from a file, so it
 * need not be on the command line, where shell history and `ps` keep it.
 * The link is still single-use and carries no session key; this keeps even
 * a live one out of sight.
 */
async function readLink(ctx: CliContext, positional: string | undefined, file: string | undefined): Promise<string> {
  let text: string
  if (file !== undefined) {
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      throw new KaiError('not_found', `cannot read the resume link from ${file}`)
    }
  } else if (positional === '-') {
    const chunks: string[] = []
    for await (const chunk of ctx.stdin) chunks.push(chunk.toString())
    text = chunks.join('')
  } else if (positional) {
    text = positional
  } else {
    usage(RESUME_USAGE)
  }
  const link = text.trim()
  if (!link) throw new KaiError('invalid_input', 'no resume link was given')
  return link
}

const resume: Command = async (ctx, argv) => {
  const { positionals, values } = parseCommandArgs(argv, { label: { type: 'string' }, file: { type: 'string' } })
  const link = await readLink(ctx, positionals[0], values.file)
  const sessionId = parseResumeLink(link).token.sessionId
  const record = await ctx.client().post<SessionRecord>(`${sid(sessionId)}/resume`, { resume_url: link, ...(values.label ? { label: values.label } : {}) })
  print(ctx, record, () => `resumed ${record.session_id}\n\n${formatRecord(record, 5)}`)
}

const device: Command = async (ctx, argv) => {
  const client = ctx.client()
  if (argv[0] === 'remove') {
    const [, id, key] = argv
    if (!id || !key) usage('device remove <session> <device>   (kai devices <session> lists them)')
    const result = await client.delete<DeviceList>(`${sid(id)}/devices/${encodeURIComponent(key)}`)
    print(ctx, result, () => `removed ${shortId(key)}: a new key epoch started without it, and the relay refuses it`)
    return
  }
  if (argv[0] === 'add') {
    const { positionals, values } = parseCommandArgs(argv.slice(1), { role: { type: 'string', default: 'writer' }, label: { type: 'string', default: 'headless' } })
    const [id, key, box] = positionals
    if (!id || !key || !box) usage('device add <session> <device-key> <box-key> [--role writer|reader] [--label NAME]')
    const result = await client.post<{ devices: Array<{ device: string; role: string; label: string }> }>(`${sid(id)}/devices`, { device: key, box, role: values.role, label: values.label })
    print(ctx, result, () => `enrolled ${shortId(key)} as ${values.role}; on that device run: kai join ${id}`)
    return
  }
  const identity = await client.get<{ device: string; box: string; label: string }>('/device')
  print(ctx, identity, () => `device ${identity.device}\nbox    ${identity.box}\nlabel  ${identity.label}\n\nto add this device to a session, run on a member: kai device add <session> ${identity.device} ${identity.box}`)
}

const devices: Command = async (ctx, argv) => {
  const [id] = argv
  if (!id) usage('devices <session>')
  const result = await ctx.client().get<DeviceList>(`${sid(id)}/devices`)
  print(ctx, result, () => formatDevices(result))
}

const invite: Command = async (ctx, argv) => {
  const [sub, id, key] = argv
  if (sub !== 'cancel' || !id || !key) usage('invite cancel <session> <invite>   (kai devices <session> lists pending invites)')
  const result = await ctx.client().delete<DeviceList>(`${sid(id)}/invites/${encodeURIComponent(key)}`)
  print(ctx, result, () => `cancelled invite ${shortId(key)}: its link opens nothing now`)
}

const leave: Command = async (ctx, argv) => {
  const [id] = argv
  if (!id) usage('leave <session>')
  await ctx.client().delete(sid(id))
  print(ctx, {}, () => `left ${id}: its keys and data are deleted from this device; other devices keep it`)
}

/** `kai stop` and `kai retry`: requests any writer may make about an agent's reply. */
function controlCommand(kind: 'stop' | 'retry'): Command {
  return async (ctx, argv) => {
    const [id, message] = argv
    if (!id || !message) usage(`${kind} <session> <reply>   (kai show <session> lists message ids)`)
    const request = await ctx.client().post<{ id: string }>(`${sid(id)}/messages/${encodeURIComponent(message)}/${kind}`, {})
    print(ctx, request, () => (kind === 'stop' ? `asked the agent to stop ${message}` : `asked the agent to answer again in place of ${message}`))
  }
}

const join: Command = async (ctx, argv) => {
  const [id] = argv
  if (!id) usage('join <session>')
  const record = await ctx.client().post<SessionRecord>(`${sid(id)}/join`, {})
  print(ctx, record, () => `joined ${record.session_id} (${record.messages.length} messages)`)
}

const client: Command = async (ctx, argv) => {
  const [sub, key] = argv
  const api = ctx.client()
  if (sub === 'add') {
    const { values } = parseArgs({ args: argv.slice(2), options: { label: { type: 'string', default: 'client' } } })
    if (!key) usage('client add <ed25519-public-key> [--label NAME]')
    const added = await api.post<{ public_key: string }>('/clients', { public_key: key, label: values.label })
    print(ctx, added, () => `client ${shortId(added.public_key)} may now sign deltas for /sync`)
  } else if (sub === 'remove' && key) {
    await api.delete(`/clients/${encodeURIComponent(key)}`)
    print(ctx, {}, () => `client ${shortId(key)} removed`)
  } else if (sub === 'list' || sub === undefined) {
    const result = await api.get<{ clients: Array<{ public_key: string; label: string }> }>('/clients')
    print(ctx, result, () => (result.clients.length ? table([['KEY', 'LABEL'], ...result.clients.map((c) => [c.public_key, c.label])]) : 'no client keys registered'))
  } else usage('client add <key> [--label NAME] | client list | client remove <key>')
}

const policy: Command = async (ctx, argv) => {
  if (argv[0] === 'set') {
    const [, id, target, value] = argv
    if (!id || !target || !value) usage('policy set <session> <default|message.content|config.<key>|<key>> <merge|timestamp|manual|user_choice|none>')
    const name = target === 'default' || target.includes('.') ? target : `config.${target}`
    const result = await ctx.client().post<{ policies: Record<string, string>; default: string }>(`${sid(id)}/policies`, { target: name, policy: value === 'none' ? null : value })
    print(ctx, result, () => formatPolicies(result))
    return
  }
  const [id] = argv
  if (!id) usage('policy <session> | policy set <session> <target> <policy>')
  const result = await ctx.client().get<{ policies: Record<string, string>; default: string }>(`${sid(id)}/policies`)
  print(ctx, result, () => formatPolicies(result))
}

function formatPolicies(result: { policies: Record<string, string>; default: string }): string {
  const rows = Object.entries(result.policies).filter(([t]) => t !== 'default')
  return [`default = ${result.default}`, ...rows.map(([t, p]) => `${t} = ${p}`)].join('\n')
}

export const COMMANDS: Record<string, { run: Command; help: string }> = {
  create: { run: create, help: 'create [--agent A] [--user U]          a new session; prints its id' },
  list: { run: list, help: 'list                                     the sessions this daemon holds' },
  show: { run: show, help: 'show <session> [-n 20]                   the session: config, conflicts, messages' },
  append: { run: append, help: 'append <session> [text…] [--role R] [--stream]   append a message (or stream stdin into one)' },
  tail: { run: tailCommand, help: 'tail <session> [-n 10] [--no-follow]     the last messages, then follow live' },
  config: { run: config, help: 'config set <session> <field> <value>     set a config field (value as JSON or text)' },
  conflicts: { run: conflicts, help: 'conflicts <session> | conflicts resolve <session> <field> <value>' },
  policy: { run: policy, help: 'policy <session> | policy set <session> <target> <policy>   conflict policies (manual, …)' },
  handoff: { run: handoff, help: 'handoff <session> [--to MODE] [--type mirror|takeover|observe]   print a QR code' },
  resume: { run: resume, help: 'resume - | --file PATH | \'<link>\'         accept a handoff on this daemon (- reads the link from stdin)' },
  device: { run: device, help: 'device | device add <session> <device-key> <box-key> [--role R] | device remove <session> <device>' },
  devices: { run: devices, help: 'devices <session>                        the session\'s devices and pending invites' },
  invite: { run: invite, help: 'invite cancel <session> <invite>         cancel a handoff link not used yet' },
  leave: { run: leave, help: 'leave <session>                          delete the session from this device (others keep it)' },
  stop: { run: controlCommand('stop'), help: 'stop <session> <reply>                   ask the agent to stop a reply (from any device)' },
  retry: { run: controlCommand('retry'), help: 'retry <session> <reply>                  ask the agent to answer again for a stopped, interrupted or failed reply' },
  join: { run: join, help: 'join <session>                           open a session this device was enrolled in' },
  client: { run: client, help: 'client add <key> | list | remove <key>   the keys that may sign /sync deltas' },
}
