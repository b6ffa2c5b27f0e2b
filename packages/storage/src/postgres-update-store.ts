import type pg from 'pg'
import { KaiError } from '@kai-sync/model'
import type { StoredUpdate, UpdateKey, UpdateStore } from './update-store'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kai_updates (
  id bigserial PRIMARY KEY,
  room text NOT NULL,
  update bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS kai_updates_room ON kai_updates (room, id);
`
// Any constant; it only keeps concurrent relays from creating the schema at once.
const SCHEMA_LOCK = 0x6b6169

/**
 * The shared store for several relay processes: one row per update. Rows
 * are appended, never updated, so relays never contend on a row; a
 * compaction deletes exactly the rows its caller merged.
 */
export class PostgresUpdateStore implements UpdateStore {
  private constructor(private readonly pool: pg.Pool) {}

  static async open(url: string, options: { maxConnections?: number } = {}): Promise<PostgresUpdateStore> {
    // Loaded here, not at the top: a relay on LevelDB never pays for the driver (bench/README.md, "The relay's memory").
    const { default: driver } = await import('pg')
    const pool = new driver.Pool({ connectionString: url, max: options.maxConnections ?? 8 })
    // An idle client that loses its server must not crash the process.
    pool.on('error', () => {})
    try {
      const client = await pool.connect()
      try {
        await client.query('SELECT pg_advisory_lock($1)', [SCHEMA_LOCK])
        await client.query(SCHEMA)
        await client.query('SELECT pg_advisory_unlock($1)', [SCHEMA_LOCK])
      } finally {
        client.release()
      }
    } catch (cause) {
      await pool.end().catch(() => {})
      throw new KaiError('unavailable', `cannot reach PostgreSQL (${(cause as Error).message})`, { cause })
    }
    return new PostgresUpdateStore(pool)
  }

  async load(room: string): Promise<StoredUpdate[]> {
    const r = await this.pool.query<{ id: string; update: Buffer }>('SELECT id, update FROM kai_updates WHERE room = $1 ORDER BY id', [room])
    return r.rows.map((row) => ({ key: row.id as UpdateKey, update: new Uint8Array(row.update.buffer, row.update.byteOffset, row.update.byteLength) }))
  }

  async append(room: string, update: Uint8Array): Promise<UpdateKey> {
    const r = await this.pool.query<{ id: string }>('INSERT INTO kai_updates (room, update) VALUES ($1, $2) RETURNING id', [room, Buffer.from(update)])
    return r.rows[0]!.id as UpdateKey
  }

  async replace(room: string, keys: readonly UpdateKey[], merged: Uint8Array): Promise<UpdateKey> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      await client.query('DELETE FROM kai_updates WHERE room = $1 AND id = ANY($2::bigint[])', [room, keys])
      const r = await client.query<{ id: string }>('INSERT INTO kai_updates (room, update) VALUES ($1, $2) RETURNING id', [room, Buffer.from(merged)])
      await client.query('COMMIT')
      return r.rows[0]!.id as UpdateKey
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {})
      throw e
    } finally {
      client.release()
    }
  }

  async deleteRoom(room: string): Promise<void> {
    await this.pool.query('DELETE FROM kai_updates WHERE room = $1', [room])
  }

  async rooms(): Promise<string[]> {
    const r = await this.pool.query<{ room: string }>('SELECT DISTINCT room FROM kai_updates ORDER BY room')
    return r.rows.map((row) => row.room)
  }

  async close(): Promise<void> {
    await this.pool.end()
  }
}
