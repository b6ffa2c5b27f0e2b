import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { serveStatic, type StaticServer } from './static-server'

let server: StaticServer | undefined
afterEach(() => server?.close())

describe('serveStatic', () => {
  it('serves the directory and in-memory files with their types, and nothing outside the directory', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kai-static-'))
    writeFileSync(join(root, 'index.html'), '<p>home</p>')
    writeFileSync(join(root, 'manifest.webmanifest'), '{}')
    writeFileSync(join(tmpdir(), 'kai-static-secret.txt'), 'secret')
    server = await serveStatic({ dir: root, files: { '/app.js': 'export {}' }, headers: { 'x-test': '1' } })
    const get = (path: string) => fetch(server!.url + path)
    const home = await get('/')
    expect([home.status, await home.text(), home.headers.get('content-type'), home.headers.get('x-test')]).toEqual([200, '<p>home</p>', 'text/html; charset=utf-8', '1'])
    expect((await get('/manifest.webmanifest')).headers.get('content-type')).toBe('application/manifest+json')
    expect((await get('/app.js')).headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    expect((await get('/%2e%2e/kai-static-secret.txt')).status).toBe(404)
    expect((await get('/missing.js')).status).toBe(404)
  })
})

describe('serveStatic on a port in use', () => {
  it('rejects with EADDRINUSE, so `pnpm start` can fall back to a free port', async () => {
    server = await serveStatic({ files: {} })
    const port = Number(new URL(server.url).port)
    await expect(serveStatic({ files: {}, port })).rejects.toMatchObject({ code: 'EADDRINUSE' })
  })
})

describe('serveStatic on a malformed path', () => {
  it('answers 400 and keeps serving (the handler used to reject with a URIError nobody caught)', async () => {
    server = await serveStatic({ files: { '/ok.js': 'export {}' } })
    expect((await fetch(server.url + '/%E0%A4%A')).status).toBe(400)
    expect((await fetch(server.url + '/ok.js')).status).toBe(200)
  })
})
