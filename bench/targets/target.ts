import type { Chunk } from "../dataset.js";
import type { BenchKey } from "../keys.js";

export type Engine = "postgres" | "sqlite";

export interface StoredRow {
  id: number;
  token: string;
  keyId: string | null;
}

/**
 * One benchmark database (a PostgreSQL database or a SQLite file) holding `rows` rows of the bench
 * table. Everything the bench does to a database besides running the dbcrypt CLI goes through here.
 */
export interface BenchTarget {
  readonly engine: Engine;
  /** What to pass to `dbcrypt --db`. */
  readonly dbArg: string;
  readonly rows: number;
  createSchema(initialKey: BenchKey): Promise<void>;
  insertChunk(chunk: Chunk): Promise<void>;
  finishLoad(): Promise<void>;
  /** Brings the database to the same state before every timed write: no dead rows, no dirty pages. */
  settle(): Promise<void>;
  /** The census limit: SELECT token_key_id, count(*) ... GROUP BY 1. */
  groupedCount(): Promise<Map<string | null, number>>;
  /** The rewrite limit: UPDATE ... SET token = token || '' over primary-key ranges of `batchSize`, one transaction each. */
  rewriteRanges(batchSize: number): Promise<number>;
  /** Keyset page for the peer baseline. */
  readPage(afterId: number, limit: number): Promise<StoredRow[]>;
  /** The peer's write: one UPDATE of one row, in autocommit. */
  updateOne(id: number, token: string, keyId: string): Promise<void>;
  /** Puts rows back exactly as they were (untimed), in one statement. */
  restore(rows: StoredRow[]): Promise<void>;
  insertKeyRow(key: BenchKey): Promise<void>;
  deleteKeyRow(keyId: string): Promise<void>;
  fetch(ids: number[]): Promise<StoredRow[]>;
  /** Closes connections and removes the database. */
  destroy(): Promise<void>;
}
