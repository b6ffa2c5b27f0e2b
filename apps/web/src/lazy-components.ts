import { lazyView } from './lazy-view'

// The lazy-loading boundaries: each of these is its own chunk, fetched when
// it is first shown rather than with the page. The handoff views carry the
// QR code encoder and the handoff protocol; the rest open from a button.
export const HandoffDialog = lazyView(() => import('./components/handoff').then((m) => m.HandoffDialog))
export const ResumePage = lazyView(() => import('./components/handoff').then((m) => m.ResumePage))
export const ConfigEditor = lazyView(() => import('./components/config-editor').then((m) => m.ConfigEditor))
export const ConflictDialog = lazyView(() => import('./components/conflict-dialog').then((m) => m.ConflictDialog))
export const DeviceList = lazyView(() => import('./components/device-list').then((m) => m.DeviceList))
export const AuditLog = lazyView(() => import('./components/audit-log').then((m) => m.AuditLog))
export const MemoryList = lazyView(() => import('./components/memory-list').then((m) => m.MemoryList))

/** Fetches every lazy view once the page is idle: out of the first load, but ready before a person opens one. */
export function preloadViews(): void {
  const all = [HandoffDialog, ResumePage, ConfigEditor, ConflictDialog, DeviceList, AuditLog, MemoryList]
  requestIdleCallback(() => all.forEach((v) => v.preload()), { timeout: 3000 })
}
