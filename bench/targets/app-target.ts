import type Database from "better-sqlite3";
import type pg from "pg";
import type { AppChunk, AppShape } from "../app-dataset.js";
import { Checkpointer, databaseUrl, dropDatabase, freshDatabase } from "./postgres.js";
import { freshSqliteFile, removeSqliteFiles } from "./sqlite.js";
import type { Engine } from "./target.js";

/**
 * One database holding an issue-10 table (AtelyaOS `messages` or Obot `properties`, app-dataset.ts)
 * and, once `dbcrypt keys init` has run, dbcrypt's keys table. The bench only loads it, settles it
 * before each timed rotate, and reads samples back at the end; everything else is the CLI's.
 */
export interface AppTarget {
  readonly engine: Engine;
  readonly shape: AppShape;
  /** What to pass to `dbcrypt --db`. */
  readonly dbArg: string;
  readonly rows: number;
  createSchema(): Promise<void>;
  insertChunk(chunk: AppChunk): Promise<void>;
  finishLoad(): Promise<void>;
  /** Same state before every timed write: no dead rows, no dirty pages. */
  settle(): Promise<void>;
  /** Rows whose primary key is in `keys`, as column → value. */
  fetch(keys: string[]): Promise<Record<string, unknown>[]>;
  /** count(*) of the table, with an optional SQL condition valid on both engines. */
  count(where?: string): Promise<number>;
  destroy(): Promise<void>;
}

export class PostgresAppTarget implements AppTarget {
  readonly engine = "postgres" as const;
  readonly shape: AppShape;
  readonly dbArg: string;
  readonly rows: number;
  readonly #adminUrl: string;
  readonly #name: string;
  #client: pg.Client | undefined;
  readonly #checkpointer = new Checkpointer();

  private constructor(adminUrl: string, name: string, shape: AppShape, rows: number) {
    this.#adminUrl = adminUrl;
    this.#name = name;
    this.shape = shape;
    this.rows = rows;
    this.dbArg = databaseUrl(adminUrl, name);
  }

  static async create(adminUrl: string, name: string, shape: AppShape, rows: number): Promise<PostgresAppTarget> {
    const target = new PostgresAppTarget(adminUrl, name, shape, rows);
    target.#client = await freshDatabase(adminUrl, name);
    return target;
  }

  get #db(): pg.Client {
    if (this.#client === undefined) throw new Error("postgres target is closed");
    return this.#client;
  }

  async createSchema(): Promise<void> {
    await this.#db.query(this.shape.ddl("postgres"));
  }

  async insertChunk(chunk: AppChunk): Promise<void> {
    const { table, columns } = this.shape;
    await this.#db.query(
      `INSERT INTO ${table} (${columns.map((column) => column.name).join(", ")})
       SELECT * FROM unnest(${columns.map((column, index) => `$${index + 1}::${column.pgArray}`).join(", ")})`,
      chunk.columns,
    );
  }

  async finishLoad(): Promise<void> {
    await this.#db.query(`VACUUM (FREEZE, ANALYZE) ${this.shape.table}`);
    await this.#checkpoint();
  }

  /** The whole database: the bench table and whatever dbcrypt keeps (its keys table). */
  async settle(): Promise<void> {
    await this.#db.query("VACUUM");
    await this.#checkpoint();
  }

  async #checkpoint(): Promise<void> {
    await this.#checkpointer.run(this.#db);
  }

  async fetch(keys: string[]): Promise<Record<string, unknown>[]> {
    const result = await this.#db.query<Record<string, unknown>>(`SELECT * FROM ${this.shape.table} WHERE ${this.shape.keyColumn} = ANY ($1::text[])`, [keys]);
    return result.rows;
  }

  async count(where?: string): Promise<number> {
    const result = await this.#db.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.shape.table}${where ? ` WHERE ${where}` : ""}`);
    return Number(result.rows[0]?.n ?? 0);
  }

  async destroy(): Promise<void> {
    await this.#client?.end().catch(() => undefined);
    this.#client = undefined;
    await dropDatabase(this.#adminUrl, this.#name);
  }
}

/** A SQLite file in WAL mode, foreign keys on, as the Coder target; booleans are stored as 0/1. */
export class SqliteAppTarget implements AppTarget {
  readonly engine = "sqlite" as const;
  readonly shape: AppShape;
  readonly dbArg: string;
  readonly rows: number;
  readonly #path: string;
  #handle: Database.Database | undefined;
  #insert: Database.Statement | undefined;

  constructor(path: string, shape: AppShape, rows: number) {
    this.#path = path;
    this.shape = shape;
    this.rows = rows;
    this.dbArg = `sqlite:${path}`;
    this.#handle = freshSqliteFile(path);
  }

  get #db(): Database.Database {
    if (this.#handle === undefined) throw new Error("sqlite target is closed");
    return this.#handle;
  }

  async createSchema(): Promise<void> {
    const { table, columns } = this.shape;
    this.#db.exec(this.shape.ddl("sqlite"));
    this.#insert = this.#db.prepare(`INSERT INTO ${table} (${columns.map((column) => column.name).join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`);
    // The whole load is one transaction, committed by finishLoad().
    this.#db.exec("BEGIN");
  }

  async insertChunk(chunk: AppChunk): Promise<void> {
    const insert = this.#insert as Database.Statement;
    for (let index = 0; index < chunk.count; index++) {
      insert.run(...chunk.columns.map((column) => {
        const value = column[index];
        return typeof value === "boolean" ? (value ? 1 : 0) : value;
      }));
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

  async fetch(keys: string[]): Promise<Record<string, unknown>[]> {
    const select = this.#db.prepare(`SELECT * FROM ${this.shape.table} WHERE ${this.shape.keyColumn} = ?`);
    return keys.flatMap((key) => {
      const row = select.get(key) as Record<string, unknown> | undefined;
      return row === undefined ? [] : [row];
    });
  }

  async count(where?: string): Promise<number> {
    return this.#db.prepare(`SELECT count(*) AS n FROM ${this.shape.table}${where ? ` WHERE ${where}` : ""}`).pluck().get() as number;
  }

  async destroy(): Promise<void> {
    this.#handle?.close();
    this.#handle = undefined;
    removeSqliteFiles(this.#path);
  }
}
