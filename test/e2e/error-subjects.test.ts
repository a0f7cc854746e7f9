/**
 * Errors carry their subject as fields, and --json prints them, so a script can act on which
 * table, key or flag failed without parsing the message.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCoderSchema } from "../support/coder-schema.js";
import { dbArg, runCli } from "../support/cli.js";
import { freshKey, registerManifest } from "../support/fixtures.js";
import { seedCoderData } from "../support/seed.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";

interface ErrorDocument {
  error: { code: string; exitCode: number; subject: Record<string, unknown> };
}

describe.each(ENGINE_KINDS)("error subjects in --json on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;
  const keyA = freshKey();

  beforeEach(async () => {
    database = await createTestDatabase(kind, "subject");
    db = await openTestDb(database.target);
    await createCoderSchema(db);
    url = dbArg(database.target);
    registerManifest(await seedCoderData(db, { users: 4, key: keyA }));
  });

  afterEach(async () => {
    await db.close();
    await database.cleanup();
  });

  async function errorOf(args: string[]): Promise<ErrorDocument["error"]> {
    const run = await runCli([...args, "--json"]);
    expect(run.code, run.stderr).not.toBe(0);
    const document = JSON.parse(run.stdout) as ErrorDocument;
    expect(document.error.exitCode).toBe(run.code);
    return document.error;
  }

  it("names the key ids that were not supplied, and the flag to add them to", async () => {
    const keyB = freshKey();
    const error = await errorOf(["rotate", "--db", url, "--new-key", keyB.base64, "--yes"]);
    expect(error).toMatchObject({ code: "unknown_key", exitCode: 3, subject: { keyIds: [keyA.id], flag: "--old-keys" } });
  });

  it("names the flag of a malformed key", async () => {
    const error = await errorOf(["rotate", "--db", url, "--new-key", freshKey().base64, "--old-keys", "not-a-key", "--yes"]);
    expect(error).toMatchObject({ code: "bad_key", exitCode: 2, subject: { flag: "--old-keys" } });
  });

  it("names a key still in use and the columns that hold values under it", async () => {
    const error = await errorOf(["keys", "revoke", keyA.id, "--db", url, "--yes"]);
    expect(error).toMatchObject({ code: "key_in_use", exitCode: 3, subject: { keyId: keyA.id } });
    expect(error.subject.columns).toEqual(expect.arrayContaining(["user_links.oauth_access_token", "external_auth_links.oauth_refresh_token"]));
  });

  it("names the table and column of a statement that failed, with its SQLSTATE or SQLite code", async () => {
    // Another session holds the table: the census's read waits past the lock or busy timeout.
    const holder = await openTestDb(database.target);
    try {
      if (kind === "postgres") {
        await holder.exec("BEGIN");
        await holder.exec("LOCK TABLE user_links IN ACCESS EXCLUSIVE MODE");
      } else {
        await holder.exec("BEGIN EXCLUSIVE");
      }
      const error = await errorOf(["status", "--db", url, "--lock-timeout", "100ms", "--busy-timeout", "100ms"]);
      expect(error.code).toBe("database_error");
      // PostgreSQL reaches the census and fails there; SQLite cannot even read the schema of a
      // file held exclusively, and says it is busy (not that it might be corrupt).
      if (kind === "postgres") expect(error.subject).toMatchObject({ table: "user_links", column: expect.any(String), sqlstate: "55P03" });
      else expect(error.subject).toEqual({ sqliteCode: expect.stringMatching(/^SQLITE_(BUSY|LOCKED)/) });
    } finally {
      await holder.exec(kind === "postgres" ? "ROLLBACK" : "ROLLBACK").catch(() => undefined);
      await holder.close();
    }
  });
});
