import { z } from 'zod'
import { fromBase64Url, isAcceptablePublicKey } from '@kai-sync/crypto'
import { KaiError, parseInput } from '@kai-sync/model'
import { readPrivateFile, writePrivateFile, type DataDir } from './data-dir'

// The client programs allowed to sign deltas for /sync: their Ed25519
// public keys, registered through the token-protected API and kept in
// `<data>/clients.json`.

export const ClientKeySchema = z.object({
  /** Ed25519 public key, 32 bytes, unpadded base64url. */
  public_key: z.string().regex(/^[A-Za-z0-9_-]{43}$/, '32 bytes as unpadded base64url (43 characters)'),
  label: z.string().min(1).max(100),
  added_at: z.number().int().nonnegative(),
})
export type ClientKey = z.infer<typeof ClientKeySchema>

const ClientsFileSchema = z.object({ clients: z.array(ClientKeySchema) })

export class ClientKeys {
  private clients: ClientKey[]

  constructor(private readonly dir: DataDir) {
    const text = readPrivateFile(dir.clientsFile)
    this.clients = text ? parseInput(ClientsFileSchema, JSON.parse(text), dir.clientsFile).clients : []
  }

  list(): ClientKey[] {
    return this.clients.map((c) => ({ ...c }))
  }

  publicKeys(): Uint8Array[] {
    return this.clients.map((c) => fromBase64Url(c.public_key)!)
  }

  /** Registers a key; registering it again only updates its label. */
  add(publicKey: string, label: string, now = Date.now()): ClientKey {
    const bytes = fromBase64Url(publicKey)
    if (!bytes || !isAcceptablePublicKey(bytes)) throw new KaiError('invalid_input', 'public_key is not an Ed25519 public key')
    const existing = this.clients.find((c) => c.public_key === publicKey)
    const entry = existing ? { ...existing, label } : { public_key: publicKey, label, added_at: now }
    this.save([...this.clients.filter((c) => c.public_key !== publicKey), entry])
    return entry
  }

  remove(publicKey: string): void {
    if (!this.clients.some((c) => c.public_key === publicKey)) throw new KaiError('not_found', 'no client with this key is registered')
    this.save(this.clients.filter((c) => c.public_key !== publicKey))
  }

  private save(clients: ClientKey[]): void {
    writePrivateFile(this.dir.clientsFile, JSON.stringify({ clients }, null, 2) + '\n')
    this.clients = clients
  }
}
