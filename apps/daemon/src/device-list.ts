import { KaiError, type Mode } from '@kai-sync/model'
import { fromBase64Url, toBase64Url, type Role } from '@kai-sync/crypto'
import { INVITE_LIFETIME_MS, type Member } from '@kai-sync/engine'
import type { HostedSession } from './hosted-session'

// What `GET /session/:id/devices` shows: the roster's devices and the
// invites still unspent. A daemon keeps no presence, so "last seen" is what
// the session itself records: the newest message or audit entry a device
// wrote (the engine refuses an update naming another device as author or
// actor, so a member cannot make another look active), with that write's mode.

export interface DeviceView {
  device: string
  role: Role
  label: string
  this_device: boolean
  mode?: Mode
  last_seen?: number
  via?: { invite_issuer: string; transfer: string }
}

export interface InviteView {
  invite: string
  transfer: 'observe' | 'mirror' | 'takeover'
  label: string
  issuer: string
  issued_at: number
  expires_at: number
}

const TRANSFER: Partial<Record<Role, InviteView['transfer']>> = { invite_reader: 'observe', invite_writer: 'mirror', invite_takeover: 'takeover' }

export function deviceList(hosted: HostedSession): { devices: DeviceView[]; invites: InviteView[] } {
  const self = toBase64Url(hosted.engine.device.publicKey)
  const seen = lastSeen(hosted)
  const devices: DeviceView[] = []
  const invites: InviteView[] = []
  for (const m of hosted.engine.roster.list()) {
    const id = toBase64Url(m.device)
    if (m.invite) {
      // Spent and retired invites are history, not something to cancel.
      const transfer = TRANSFER[m.role]
      if (transfer) invites.push({ invite: id, transfer, label: m.label, issuer: m.issuer, issued_at: m.issuedAt, expires_at: m.issuedAt + INVITE_LIFETIME_MS })
      continue
    }
    const view: DeviceView = { device: id, role: m.role, label: m.label, this_device: id === self }
    const last = seen.get(id)
    if (last) Object.assign(view, { mode: last.mode, last_seen: last.at })
    if (m.via) view.via = { invite_issuer: m.via.inviteIssuer, transfer: m.via.transfer }
    devices.push(view)
  }
  return { devices, invites }
}

/** The newest write of each device in the session doc (nothing before this device holds a key). */
function lastSeen(hosted: HostedSession): Map<string, { at: number; mode: Mode }> {
  const seen = new Map<string, { at: number; mode: Mode }>()
  if (!hosted.ready) return seen
  const note = (device: string | undefined, at: number, mode: Mode | undefined) => {
    if (!device || !mode) return
    const prev = seen.get(device)
    if (!prev || at > prev.at) seen.set(device, { at, mode })
  }
  const doc = hosted.engine.session
  for (const m of doc.messages()) note(m.author, m.timestamp, m.mode)
  for (const a of doc.audit()) note(a.actor, a.timestamp, a.mode)
  return seen
}

/** The roster member a path names: 400 `invalid_input` unless it is a key, 404 `not_found` unless it is in the roster. */
export function memberOf(hosted: HostedSession, id: string, what: 'device' | 'invite'): Member {
  const key = fromBase64Url(id)
  if (!key || key.length !== 32) throw new KaiError('invalid_input', `${JSON.stringify(id.slice(0, 60))} is not a ${what} key (32 bytes, base64url)`)
  const member = hosted.engine.roster.member(key)
  if (!member || (what === 'device') === (member.invite === true)) {
    throw new KaiError('not_found', `no ${what} ${id.slice(0, 12)}… in this session's roster; kai devices ${hosted.id} lists them`)
  }
  return member
}
