// Serves the built PWA on loopback (a secure context: service worker and
// WebCrypto work). Run: pnpm serve:web  (KAI_WEB_PORT, default 5180)
import { join } from 'node:path'
import { serveStatic } from '@kai-sync/browser-harness'
import { DIST } from './build'

const server = await serveStatic({ dir: join(DIST, 'pwa'), port: Number(process.env.KAI_WEB_PORT ?? 5180) })
console.log(`kai-sync PWA at ${server.url}/`)
