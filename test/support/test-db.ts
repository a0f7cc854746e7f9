/**
 * One small interface over PostgreSQL and SQLite so fixtures and assertions are written once and
 * run on both engines. SQL uses PostgreSQL's $1, $2 placeholders on both.
 */
import { createHash } from "node:crypto";
import Database from "better-sqlite3";
import pg from "pg";
import { createPgDatabase } from "./pg.js";
import { tempSqlitePath } from "./sqlite.js";

export type TestDbTarget = { kind: "postgres"; url: string } | { kind: "sqlite"; path: string };
export type EngineKind = TestDbTarget["kind"];
export const ENGINE_KINDS: readonly EngineKind[] = ["postgres", "sqlite"];

export interface TestDb {
  kind: EngineKind;
  exec(sql: string): Promise<void>;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

export interface CreatedTestDatabase {
  target: TestDbTarget;
  cleanup(): Promise<void>;
}

/** An empty database of the given kind: a fresh PostgreSQL database or a fresh SQLite file path. */
export async function createTestDatabase(kind: EngineKind, label?: string): Promise<CreatedTestDatabase> {
  if (kind === "postgres") {
    const database = await createPgDatabase(label);
    return { target: { kind, url: database.url }, cleanup: database.drop };
  }
  const file = tempSqlitePath(label);
  return { target: { kind, path: file.path }, cleanup: async () => file.cleanup() };
}

export async function openTestDb(target: TestDbTarget): Promise<TestDb> {
  return target.kind === "postgres" ? openPostgres(target.url) : openSqlite(target.path);
}

async function openPostgres(url: string): Promise<TestDb> {
  const client = new pg.Client({ connectionString: url });
  // A test may drop its database while this connection is still open; that must not crash the worker.
  client.on("error", () => {});
  await client.connect();
  return {
    kind: "postgres",
    exec: async (sql) => {
      await client.query(sql);
    },
    query: async <T,>(sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows as T[],
    close: () => client.end(),
  };
}

function openSqlite(path: string): TestDb {
  const db = new Database(path);
  db.pragma("foreign_keys = ON");
  return {
    kind: "sqlite",
    exec: async (sql) => {
      db.exec(sql);
    },
    query: async <T,>(sql: string, params: unknown[] = []) => {
      const statement = db.prepare(toSqlitePlaceholders(sql));
      const bindings = params.length > 0 ? [toNumberedBindings(params)] : [];
      if (statement.reader) return statement.all(...bindings) as T[];
      statement.run(...bindings);
      return [];
    },
    close: async () => {
      db.close();
    },
  };
}

/** $1 → ?1, leaving quoted strings and identifiers alone. */
export function toSqlitePlaceholders(sql: string): string {
  return sql.replace(/'(?:[^']|'')*'|"(?:[^"]|"")*"|\$(\d+)/g, (match, index: string | undefined) =>
    index === undefined ? match : `?${index}`,
  );
}

/** better-sqlite3 binds ?NNN parameters by name, from an object keyed by the number. */
function toNumberedBindings(params: unknown[]): Record<number, unknown> {
  return Object.fromEntries(params.map((value, i) => [i + 1, toSqliteValue(value)]));
}

function toSqliteValue(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === "boolean") return value ? 1 : 0;
  if (value instanceof Date) return value.toISOString();
  return value;
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * A hash of every row of every named table, for "nothing changed" assertions. Rows are sorted by
 * their canonical text in JS rather than by ORDER BY, so collation and NULL ordering can't matter.
 */
export async function checksumDatabase(db: TestDb, tables: readonly string[]): Promise<string> {
  const hash = createHash("sha256");
  for (const table of tables) {
    const rows = await db.query(`SELECT * FROM ${quoteIdent(table)}`);
    const canonicalRows = rows.map(canonicalRow).sort();
    hash.update(`${table}\n${canonicalRows.length}\n${canonicalRows.join("\n")}\n`);
  }
  return hash.digest("hex");
}

function canonicalRow(row: Record<string, unknown>): string {
  const columns = Object.keys(row).sort();
  return JSON.stringify(columns.map((column) => [column, canonicalValue(row[column])]));
}

function canonicalValue(value: unknown): unknown {
  if (value instanceof Date) return `date:${value.toISOString()}`;
  if (Buffer.isBuffer(value)) return `bytes:${value.toString("hex")}`;
  if (typeof value === "bigint") return `bigint:${value.toString()}`;
  if (value !== null && typeof value === "object") return JSON.stringify(value);
  return value ?? null;
}
