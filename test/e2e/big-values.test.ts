/**
 * Large values (Obot keeps whole HTTP bodies in encrypted audit columns): batches are bounded by
 * --batch-bytes, not only by --batch-size, and every value round-trips exactly, on both databases.
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dbArg, registerSecret, runCli } from "../support/cli.js";
import { openValue } from "../support/coder-crypto.js";
import { freshKey } from "../support/fixtures.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";

const VALUE_BYTES = 256 * 1024;
const ROWS = 40;

describe.each(ENGINE_KINDS)("values of 256 KiB on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;
  const bodies = Array.from({ length: ROWS }, (_, row) => `${row}:${randomBytes(VALUE_BYTES / 2).toString("hex").slice(0, VALUE_BYTES - 8)}`);
  for (const body of bodies.slice(0, 3)) registerSecret(body.slice(0, 64));

  beforeEach(async () => {
    database = await createTestDatabase(kind, "big");
    db = await openTestDb(database.target);
    url = dbArg(database.target);
    expect((await runCli(["keys", "init", "--db", url])).code).toBe(0);
    await db.exec("CREATE TABLE audit_logs (id INTEGER PRIMARY KEY, body TEXT, body_key_id TEXT REFERENCES dbcrypt_keys(active_key_digest))");
    for (const [row, body] of bodies.entries()) await db.query("INSERT INTO audit_logs (id, body) VALUES ($1, $2)", [row, body]);
  });

  afterEach(async () => {
    await db.close();
    await database.cleanup();
  });

  it("keeps each batch near --batch-bytes, and every value round-trips", async () => {
    const key = freshKey();
    const run = await runCli(["rotate", "--db", url, "--new-key", key.base64, "--yes", "--json-events", "--batch-bytes", "1MiB"]);
    expect(run.code, run.stderr).toBe(0);
    const batches = run.stdout.split("\n").filter((line) => line.includes('"type":"batch"')).map((line) => JSON.parse(line) as { scanned: number });
    // The first batch of a table is small (16 rows) until sizes are known; then 1 MiB holds 4 such values.
    expect(batches[0]?.scanned).toBeLessThanOrEqual(16);
    expect(batches.slice(1).every((batch) => batch.scanned <= 4), JSON.stringify(batches.map((batch) => batch.scanned))).toBe(true);
    expect(batches.reduce((sum, batch) => sum + batch.scanned, 0)).toBe(ROWS);
    const stored = await db.query<{ id: number | bigint; body: string; body_key_id: string }>("SELECT id, body, body_key_id FROM audit_logs ORDER BY id");
    expect(stored).toHaveLength(ROWS);
    for (const row of stored) {
      expect(row.body_key_id).toBe(key.id);
      expect(openValue(key.bytes, row.body)).toBe(bodies[Number(row.id)]);
    }
  });
});
