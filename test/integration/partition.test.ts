/**
 * `--partition I/N` at the dialect: each part's batch reads, walked to the end, return disjoint
 * sets of rows that together are the whole table, for single and composite keys of several
 * types, on both databases. (The e2e test shows each value is rewritten once; this shows why.)
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Dialect, RowKey } from "../../src/db/dialect.js";
import { PostgresDialect } from "../../src/db/postgres.js";
import { SqliteDialect } from "../../src/db/sqlite.js";
import { planSchema } from "../../src/schema/discover.js";
import type { EncryptedTable } from "../../src/schema/model.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";

const ROWS = 600;

async function tableNamed(dialect: Dialect, name: string): Promise<EncryptedTable> {
  const plan = planSchema(await dialect.introspect(), { preset: "none", tables: { [name]: { columns: { secret: { keyIdColumn: "secret_key_id" } } } } }, "dbcrypt_keys");
  const table = plan.tables.find((candidate) => candidate.ref.name === name);
  if (table === undefined) throw new Error(`no table ${name} in the plan: ${JSON.stringify(plan.refused)}`);
  return table;
}

async function walk(dialect: Dialect, table: EncryptedTable, partition?: { index: number; count: number }): Promise<string[]> {
  const keys: string[] = [];
  let after: RowKey | undefined;
  for (;;) {
    const rows = await dialect.readBatch(table, partition === undefined ? { kind: "all" } : { kind: "all", partition }, after, 97);
    for (const row of rows) keys.push(row.rowKey.map(String).join("|"));
    if (rows.length < 97) return keys;
    after = rows[rows.length - 1]?.rowKey;
  }
}

describe.each(ENGINE_KINDS)("partitions at the dialect on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let dialect: Dialect;

  beforeEach(async () => {
    database = await createTestDatabase(kind, "parts");
    db = await openTestDb(database.target);
    await db.exec("CREATE TABLE dbcrypt_keys (number INTEGER PRIMARY KEY, active_key_digest TEXT UNIQUE, revoked_key_digest TEXT UNIQUE, created_at TIMESTAMP, revoked_at TIMESTAMP, test TEXT NOT NULL)");
    await db.exec("CREATE TABLE by_int (id BIGINT PRIMARY KEY, secret TEXT, secret_key_id TEXT)");
    await db.exec("CREATE TABLE by_pair (tenant TEXT NOT NULL, n INTEGER NOT NULL, secret TEXT, secret_key_id TEXT, PRIMARY KEY (tenant, n))");
    for (let first = 0; first < ROWS; first += 100) {
      const ids = Array.from({ length: 100 }, (_, offset) => first + offset);
      await db.query(`INSERT INTO by_int (id, secret) VALUES ${ids.map((_, index) => `($${index * 2 + 1}, $${index * 2 + 2})`).join(", ")}`, ids.flatMap((id) => [id * 7919 - 100_000, `v${id}`]));
      await db.query(`INSERT INTO by_pair (tenant, n, secret) VALUES ${ids.map((_, index) => `($${index * 3 + 1}, $${index * 3 + 2}, $${index * 3 + 3})`).join(", ")}`, ids.flatMap((id) => [`tenant-${id % 7} ✓`, id, `v${id}`]));
    }
    const target = database.target;
    dialect = target.kind === "postgres" ? await PostgresDialect.connect(target.url, "dbcrypt_keys", { command: "test" }) : SqliteDialect.open(target.path, "dbcrypt_keys", { readOnly: true, busyTimeoutMs: 2_000 });
  });

  afterEach(async () => {
    await dialect.close();
    await db.close();
    await database.cleanup();
  });

  it.each(["by_int", "by_pair"])("splits %s into disjoint parts that cover it, for N = 1, 2, 3 and 7", async (name) => {
    const table = await tableNamed(dialect, name);
    const all = (await walk(dialect, table)).sort();
    expect(all).toHaveLength(ROWS);
    for (const count of [1, 2, 3, 7]) {
      // One part after another: a dialect's read session takes one statement at a time.
      const parts: Awaited<ReturnType<typeof walk>>[] = [];
      for (let index = 0; index < count; index++) parts.push(await walk(dialect, table, { index, count }));
      const seen = parts.flat();
      expect(new Set(seen).size, `N = ${count}: no row in two parts`).toBe(seen.length);
      expect(seen.sort(), `N = ${count}: every row in a part`).toEqual(all);
      for (const part of parts) expect(part.length, `N = ${count}: parts are roughly even`).toBeGreaterThan(ROWS / count / 2);
    }
  });
});
