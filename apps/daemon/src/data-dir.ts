import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { KaiError } from '@kai-sync/model'

// The daemon's data directory: keys, the bearer token and the store, all
// readable by their owner only. The directory is 0700 and every secret file
// 0600, set explicitly rather than left to the umask. A file that others
// can read is refused at start, as ssh refuses a readable private key.

/** Session ids and key names used as file names: base64url only, so no path tricks. */
const FILE_SAFE = /^[A-Za-z0-9_-]{1,200}$/

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.KAI_DATA_DIR ?? join(homedir(), '.kai'))
}

export class DataDir {
  constructor(readonly root: string) {}

  get deviceKeyFile(): string {
    return join(this.root, 'device.json')
  }
  get boxKeyFile(): string {
    return join(this.root, 'box.json')
  }
  get tokenFile(): string {
    return join(this.root, 'token')
  }
  get clientsFile(): string {
    return join(this.root, 'clients.json')
  }
  /** Where a running daemon says which port it listens on. */
  get runtimeFile(): string {
    return join(this.root, 'daemon.json')
  }
  get storeDir(): string {
    return join(this.root, 'store')
  }
  get keysDir(): string {
    return join(this.root, 'keys')
  }
  get sessionsDir(): string {
    return join(this.root, 'sessions')
  }

  sessionKeyFile(sessionId: string): string {
    return join(this.keysDir, `${fileSafe(sessionId)}.json`)
  }

  sessionMetaFile(sessionId: string): string {
    return join(this.sessionsDir, `${fileSafe(sessionId)}.json`)
  }

  /** What the session's engine keeps of its own envelopes the log dropped (see DroppedOwnFiles). */
  sessionDroppedFile(sessionId: string): string {
    return join(this.sessionsDir, `${fileSafe(sessionId)}.dropped.json`)
  }

  /** Creates the directory tree (0700 each) and checks nobody else can read it. */
  prepare(): void {
    for (const dir of [this.root, this.keysDir, this.sessionsDir, this.storeDir]) {
      mkdirSync(dir, { recursive: true, mode: 0o700 })
      assertPrivate(dir, 0o700)
    }
  }
}

export function fileSafe(id: string): string {
  if (!FILE_SAFE.test(id)) throw new KaiError('invalid_input', `${JSON.stringify(id.slice(0, 40))} is not a session id (base64url, 1-200 characters)`)
  return id
}

/** Throws unless `path` grants nothing to group or others. */
export function assertPrivate(path: string, mode: 0o600 | 0o700): void {
  const actual = statSync(path).mode & 0o777
  if ((actual & 0o077) !== 0) {
    throw new KaiError(
      'forbidden',
      `${path} is readable by other users (mode ${actual.toString(8)}); run: chmod ${mode.toString(8)} '${path}'`,
    )
  }
}

/** Writes a file only its owner can read, atomically (temp file, fsync, rename). */
export function writePrivateFile(path: string, contents: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`
  const fd = openSync(tmp, 'w', 0o600)
  try {
    // The mode given to open is masked by the umask; chmod makes it exact.
    chmodSync(tmp, 0o600)
    writeSync(fd, typeof contents === 'string' ? Buffer.from(contents, 'utf8') : Buffer.from(contents))
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
}

/** Reads a private file, or returns null if there is none; refuses one others can read. */
export function readPrivateFile(path: string): string | null {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw e
  }
  assertPrivate(path, 0o600)
  return text
}
