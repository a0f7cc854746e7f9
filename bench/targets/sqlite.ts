import { rmSync } from "node:fs";
import Database from "better-sqlite3";
import { TABLE, type Chunk } from "../dataset.js";
import type { BenchKey } from "../keys.js";
import type { BenchTarget, StoredRow } from "./target.js";

/**
 * A SQLite file in WAL mode (what applications run in production), with the library's default
 * synchronous setting, foreign keys on, and an INTEGER (64-bit) primary key. The limit and the
 * peer run in this process through better-sqlite3, as SQLite always runs in-process.
 */
/** A new SQLite file (any old one removed), in WAL mode with foreign keys on, as applications run it. */
export function freshSqliteFile(path: string): Database.Database {
  rmSync(path, { force: true });
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("foreign_keys = ON");
  return db;
}

/** The file and everything SQLite and dbcrypt keep beside it. */
export function removeSqliteFiles(path: string): void {
  for (const suffix of ["", "-wal", "-shm", "-journal", ".dbcrypt-lock"]) rmSync(`${path}${suffix}`, { force: true });
}

export class SqliteTarget implements BenchTarget {
  readonly engine = "sqlite" as const;
  readonly dbArg: string;
  readonly rows: number;
  readonly #path: string;
  #handle: Database.Database | undefined;
  #insert: Database.Statement | undefined;
  #keyId = "";

  constructor(path: string, rows: number) {
    this.#path = path;
    this.rows = rows;
    this.dbArg = `sqlite:${path}`;
    this.#handle = freshSqliteFile(path);
  }

  get #db(): Database.Database {
    if (this.#handle === undefined) throw new Error("sqlite target is closed");
    return this.#handle;
  }

  async createSchema(initialKey: BenchKey): Promise<void> {
    this.#db.exec(`
      CREATE TABLE dbcrypt_keys (number INTEGER NOT NULL PRIMARY KEY, active_key_digest TEXT UNIQUE, revoked_key_digest TEXT UNIQUE,
        created_at TEXT DEFAULT CURRENT_TIMESTAMP, revoked_at TEXT, test TEXT NOT NULL);
      CREATE TABLE ${TABLE} (
        id INTEGER PRIMARY KEY,
        user_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        token TEXT NOT NULL,
        token_key_id TEXT REFERENCES dbcrypt_keys(active_key_digest));`);
    await this.insertKeyRow(initialKey);
    this.#keyId = initialKey.id;
    this.#insert = this.#db.prepare(
      `INSERT INTO ${TABLE} (id, user_id, provider, scopes, created_at, updated_at, token, token_key_id)
       VALUES (?, ?, ?, ?, datetime('now', '-' || (? % 50000) || ' minutes'), datetime('now'), ?, ?)`,
    );
    // The whole load is one transaction, committed by finishLoad().
    this.#db.exec("BEGIN");
  }

  async insertChunk(chunk: Chunk): Promise<void> {
    const insert = this.#insert as Database.Statement;
    for (let index = 0; index < chunk.ids.length; index++) {
      const id = chunk.ids[index] as number;
      insert.run(id, chunk.userIds[index], chunk.providers[index], chunk.scopes[index], id, chunk.tokens[index], this.#keyId);
    }
  }

  async finishLoad(): Promise<void> {
    this.#db.exec("COMMIT");
    this.#db.exec("ANALYZE");
    this.#db.pragma("wal_checkpoint(TRUNCATE)");
  }

  async settle(): Promise<void> {
    this.#db.pragma("wal_checkpoint(TRUNCATE)");
  }

  async groupedCount(): Promise<Map<string | null, number>> {
    const rows = this.#db.prepare(`SELECT token_key_id AS key_id, count(*) AS n FROM ${TABLE} GROUP BY 1`).all() as { key_id: string | null; n: number }[];
    return new Map(rows.map((row) => [row.key_id, row.n]));
  }

  async rewriteRanges(batchSize: number): Promise<number> {
    const update = this.#db.prepare(`UPDATE ${TABLE} SET token = token || '' WHERE id > ? AND id <= ?`);
    const batch = this.#db.transaction((low: number, high: number) => update.run(low, high).changes);
    let changed = 0;
    for (let low = 0; low < this.rows; low += batchSize) changed += batch.immediate(low, low + batchSize);
    return changed;
  }

  async readPage(afterId: number, limit: number): Promise<StoredRow[]> {
    const rows = this.#db.prepare(`SELECT id, token, token_key_id FROM ${TABLE} WHERE id > ? ORDER BY id LIMIT ?`).all(afterId, limit) as { id: number; token: string; token_key_id: string | null }[];
    return rows.map((row) => ({ id: row.id, token: row.token, keyId: row.token_key_id }));
  }

  #updateOne: Database.Statement | undefined;

  async updateOne(id: number, token: string, keyId: string): Promise<void> {
    this.#updateOne ??= this.#db.prepare(`UPDATE ${TABLE} SET token = ?, token_key_id = ?, updated_at = datetime('now') WHERE id = ?`);
    this.#updateOne.run(token, keyId, id);
  }

  async restore(rows: StoredRow[]): Promise<void> {
    const update = this.#db.prepare(`UPDATE ${TABLE} SET token = ?, token_key_id = ? WHERE id = ?`);
    this.#db.transaction(() => {
      for (const row of rows) update.run(row.token, row.keyId, row.id);
    }).immediate();
  }

  async insertKeyRow(key: BenchKey): Promise<void> {
    this.#db
      .prepare("INSERT INTO dbcrypt_keys (number, active_key_digest, created_at, test) SELECT COALESCE(MAX(number), 0) + 1, ?, CURRENT_TIMESTAMP, ? FROM dbcrypt_keys")
      .run(key.id, key.seal("coder"));
  }

  async deleteKeyRow(keyId: string): Promise<void> {
    this.#db.prepare("DELETE FROM dbcrypt_keys WHERE active_key_digest = ?").run(keyId);
  }

  async fetch(ids: number[]): Promise<StoredRow[]> {
    const select = this.#db.prepare(`SELECT id, token, token_key_id FROM ${TABLE} WHERE id = ?`);
    return ids.flatMap((id) => {
      const row = select.get(id) as { id: number; token: string; token_key_id: string | null } | undefined;
      return row === undefined ? [] : [{ id: row.id, token: row.token, keyId: row.token_key_id }];
    });
  }

  sqliteVersion(): string {
    return this.#db.prepare("SELECT sqlite_version() AS v").pluck().get() as string;
  }

  async destroy(): Promise<void> {
    this.#handle?.close();
    this.#handle = undefined;
    removeSqliteFiles(this.#path);
  }
}
