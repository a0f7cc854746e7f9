import pg from "pg";
import { TABLE, type Chunk } from "../dataset.js";
import type { BenchKey } from "../keys.js";
import type { BenchTarget, StoredRow } from "./target.js";

export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, async (client) => {
    await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [name]);
    await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)}`);
  });
}

export async function serverFacts(adminUrl: string): Promise<Record<string, string>> {
  return withClient(adminUrl, async (client) => {
    const result = await client.query<{ name: string; setting: string }>(
      `SELECT name, current_setting(name) AS setting FROM pg_settings
        WHERE name IN ('server_version', 'shared_buffers', 'synchronous_commit', 'fsync', 'wal_level', 'max_wal_size', 'full_page_writes', 'max_parallel_workers_per_gather')`,
    );
    return Object.fromEntries(result.rows.map((row) => [row.name, row.setting]));
  });
}

/**
 * Creates database `name` for the run and returns a client connected to it. A database left by a
 * run that crashed is dropped; one that is in use belongs to a bench running right now, which
 * dropping would wreck (and whose numbers this run would skew), so that is refused.
 */
export async function freshDatabase(adminUrl: string, name: string): Promise<pg.Client> {
  const sessions = await withClient(adminUrl, async (client) =>
    Number((await client.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1", [name])).rows[0]?.n ?? 0),
  );
  if (sessions > 0) {
    throw new Error(`database ${name} has ${sessions} open session(s): another benchmark seems to be running on this server; wait for it, or pass --pg-database`);
  }
  await dropDatabase(adminUrl, name);
  await withClient(adminUrl, (client) => client.query(`CREATE DATABASE ${client.escapeIdentifier(name)} TEMPLATE template0 ENCODING 'UTF8'`));
  const client = new pg.Client({ connectionString: databaseUrl(adminUrl, name), application_name: "dbcrypt-bench" });
  client.on("error", () => undefined);
  await client.connect();
  return client;
}

/**
 * A PostgreSQL database created for the run (dropped first if a previous run left it). Keys
 * table exactly as Coder's; the bench table has a bigint primary key, a token encrypted under the
 * current key and its key id with a foreign key to dbcrypt_keys(active_key_digest). Autovacuum is
 * off on the bench table so that it cannot start in the middle of a timed run; `settle()` vacuums
 * and checkpoints before every timed write instead, so every measurement starts from the same state.
 */
/**
 * CHECKPOINT between timed runs, where the role may: without superuser or pg_checkpoint the runs
 * are still interleaved, only less isolated, so a refusal turns it off instead of failing.
 */
export class Checkpointer {
  #allowed = true;

  async run(client: pg.Client): Promise<void> {
    if (!this.#allowed) return;
    try {
      await client.query("CHECKPOINT");
    } catch {
      this.#allowed = false;
    }
  }
}

export class PostgresTarget implements BenchTarget {
  readonly engine = "postgres" as const;
  readonly dbArg: string;
  readonly rows: number;
  readonly #adminUrl: string;
  readonly #name: string;
  #client: pg.Client | undefined;
  readonly #checkpointer = new Checkpointer();
  #keyId = "";

  private constructor(adminUrl: string, name: string, rows: number) {
    this.#adminUrl = adminUrl;
    this.#name = name;
    this.rows = rows;
    this.dbArg = databaseUrl(adminUrl, name);
  }

  static async create(adminUrl: string, name: string, rows: number): Promise<PostgresTarget> {
    const target = new PostgresTarget(adminUrl, name, rows);
    target.#client = await freshDatabase(adminUrl, name);
    return target;
  }

  get #db(): pg.Client {
    if (this.#client === undefined) throw new Error("postgres target is closed");
    return this.#client;
  }

  async createSchema(initialKey: BenchKey): Promise<void> {
    await this.#db.query(`
      CREATE TABLE dbcrypt_keys (
        number integer NOT NULL PRIMARY KEY,
        active_key_digest text UNIQUE,
        revoked_key_digest text UNIQUE,
        created_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP,
        revoked_at timestamp with time zone,
        test text NOT NULL);
      CREATE TABLE ${TABLE} (
        id bigint PRIMARY KEY,
        user_id uuid NOT NULL,
        provider text NOT NULL,
        scopes text NOT NULL,
        created_at timestamp with time zone NOT NULL,
        updated_at timestamp with time zone NOT NULL,
        token text NOT NULL,
        token_key_id text REFERENCES dbcrypt_keys(active_key_digest))
        WITH (autovacuum_enabled = false);`);
    await this.insertKeyRow(initialKey);
    this.#keyId = initialKey.id;
  }

  async insertChunk(chunk: Chunk): Promise<void> {
    await this.#db.query(
      `INSERT INTO ${TABLE} (id, user_id, provider, scopes, created_at, updated_at, token, token_key_id)
       SELECT v.id, v.user_id, v.provider, v.scopes, now() - (v.id % 50000) * interval '1 minute', now(), v.token, $6
         FROM unnest($1::int8[], $2::uuid[], $3::text[], $4::text[], $5::text[]) AS v(id, user_id, provider, scopes, token)`,
      [chunk.ids, chunk.userIds, chunk.providers, chunk.scopes, chunk.tokens, this.#keyId],
    );
  }

  async finishLoad(): Promise<void> {
    await this.#db.query(`VACUUM (FREEZE, ANALYZE) ${TABLE}`);
    await this.#db.query("VACUUM ANALYZE dbcrypt_keys");
    await this.#checkpoint();
  }

  async settle(): Promise<void> {
    await this.#db.query(`VACUUM ${TABLE}`);
    await this.#db.query("VACUUM dbcrypt_keys");
    await this.#checkpoint();
  }

  async #checkpoint(): Promise<void> {
    await this.#checkpointer.run(this.#db);
  }

  async groupedCount(): Promise<Map<string | null, number>> {
    const result = await this.#db.query<{ key_id: string | null; n: string }>(`SELECT token_key_id AS key_id, count(*) AS n FROM ${TABLE} GROUP BY 1`);
    return new Map(result.rows.map((row) => [row.key_id, Number(row.n)]));
  }

  async rewriteRanges(batchSize: number): Promise<number> {
    let changed = 0;
    for (let low = 0; low < this.rows; low += batchSize) {
      const result = await this.#db.query(`UPDATE ${TABLE} SET token = token || '' WHERE id > $1 AND id <= $2`, [low, low + batchSize]);
      changed += result.rowCount ?? 0;
    }
    return changed;
  }

  async readPage(afterId: number, limit: number): Promise<StoredRow[]> {
    const result = await this.#db.query<{ id: string; token: string; token_key_id: string | null }>(
      `SELECT id, token, token_key_id FROM ${TABLE} WHERE id > $1 ORDER BY id LIMIT $2`,
      [afterId, limit],
    );
    return result.rows.map((row) => ({ id: Number(row.id), token: row.token, keyId: row.token_key_id }));
  }

  async updateOne(id: number, token: string, keyId: string): Promise<void> {
    // Unnamed extended-protocol query: parse, bind and execute in one round trip, autocommit.
    await this.#db.query(`UPDATE ${TABLE} SET token = $1, token_key_id = $2, updated_at = now() WHERE id = $3`, [token, keyId, id]);
  }

  async restore(rows: StoredRow[]): Promise<void> {
    await this.#db.query(
      `UPDATE ${TABLE} AS t SET token = v.token, token_key_id = v.key_id
         FROM unnest($1::int8[], $2::text[], $3::text[]) AS v(id, token, key_id) WHERE t.id = v.id`,
      [rows.map((row) => row.id), rows.map((row) => row.token), rows.map((row) => row.keyId)],
    );
  }

  async insertKeyRow(key: BenchKey): Promise<void> {
    await this.#db.query(
      "INSERT INTO dbcrypt_keys (number, active_key_digest, created_at, test) SELECT COALESCE(MAX(number), 0) + 1, $1, CURRENT_TIMESTAMP, $2 FROM dbcrypt_keys",
      [key.id, key.seal("coder")],
    );
  }

  async deleteKeyRow(keyId: string): Promise<void> {
    await this.#db.query("DELETE FROM dbcrypt_keys WHERE active_key_digest = $1", [keyId]);
  }

  async fetch(ids: number[]): Promise<StoredRow[]> {
    const result = await this.#db.query<{ id: string; token: string; token_key_id: string | null }>(
      `SELECT id, token, token_key_id FROM ${TABLE} WHERE id = ANY ($1::int8[]) ORDER BY id`,
      [ids],
    );
    return result.rows.map((row) => ({ id: Number(row.id), token: row.token, keyId: row.token_key_id }));
  }

  async destroy(): Promise<void> {
    await this.#client?.end().catch(() => undefined);
    this.#client = undefined;
    await dropDatabase(this.#adminUrl, this.#name);
  }
}
