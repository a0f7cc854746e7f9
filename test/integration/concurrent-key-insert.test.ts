/**
 * Several runs inserting the same new key row at once (the parts of a --partition job all record
 * the key they write with): every one must get the one row, none may fail. On PostgreSQL the
 * loser of the race on `number` sees a unique violation or a serialization failure and reads again.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Dialect } from "../../src/db/dialect.js";
import { PostgresDialect } from "../../src/db/postgres.js";
import { SqliteDialect } from "../../src/db/sqlite.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";

describe.each(ENGINE_KINDS)("concurrent key inserts on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let dialects: Dialect[];

  beforeEach(async () => {
    database = await createTestDatabase(kind, "keyrace");
    db = await openTestDb(database.target);
    const target = database.target;
    const open = async (): Promise<Dialect> => (target.kind === "postgres" ? PostgresDialect.connect(target.url, "dbcrypt_keys", { command: "test" }) : SqliteDialect.open(target.path, "dbcrypt_keys", { readOnly: false, busyTimeoutMs: 5_000 }));
    dialects = [await open(), await open(), await open()];
    await dialects[0]!.createKeysTable();
  });

  afterEach(async () => {
    for (const dialect of dialects) await dialect.close();
    await db.close();
    await database.cleanup();
  });

  it("gives every racer the same single row, round after round", async () => {
    for (let round = 0; round < 15; round++) {
      const keyId = `k${String(round).padStart(6, "0")}`;
      const rows = await Promise.all(dialects.map((dialect) => dialect.insertActiveKey(keyId, `canary ${round}`)));
      expect(new Set(rows.map((row) => row.number)).size, `round ${round}`).toBe(1);
      expect(rows.every((row) => row.activeKeyDigest === keyId)).toBe(true);
    }
    const all = await db.query<{ n: number | string }>("SELECT count(*) AS n FROM dbcrypt_keys");
    expect(Number(all[0]?.n)).toBe(15);
  });
});
