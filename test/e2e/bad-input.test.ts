/**
 * The CLI against bad input, through the built binary on both engines: malformed keys, keys that do
 * not match the database, broken config files, databases that cannot be reached or written, and
 * operator workflows (confirmation, dry run, the keys subcommands). Every refusal must exit with the
 * documented code (src/errors.ts), name what to fix, print no secret, and leave the data untouched.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { keyIdOf, openValue, randomKey, sealValue, testKeyFrom, type TestKey } from "../support/coder-crypto.js";
import { CODER_ENCRYPTED_COLUMNS, createCoderSchema } from "../support/coder-schema.js";
import { CLI_PATH, dbArg, findLeaks, registerSecret, runCli, type CliRun } from "../support/cli.js";
import { ensureActiveKeyRow, seedCoderData } from "../support/seed.js";
import { checksumDatabase, createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type EngineKind, type TestDb } from "../support/test-db.js";
import { freshKey } from "../support/fixtures.js";

const UNREACHABLE_PG = "postgres://postgres@127.0.0.1:1/x";

/** A key whose base64 holds '+' or '/', so its URL-safe spelling differs from the standard one. */
function keyWithSymbols(): TestKey {
  for (;;) {
    const key = freshKey();
    if (/[+/]/.test(key.base64)) return key;
  }
}

/** Every table in the database and every row in it, so "nothing changed" also catches new tables. */
async function snapshot(db: TestDb): Promise<string> {
  const tables = db.kind === "postgres"
    ? (await db.query<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'")).map((row) => row.name)
    : (await db.query<{ name: string }>("SELECT name FROM sqlite_schema WHERE type = 'table'")).map((row) => row.name);
  tables.sort();
  return `${tables.join(",")}:${await checksumDatabase(db, tables)}`;
}

/** The first line is the whole error; the rest is details and a hint, never a stack trace. */
function expectCleanError(run: CliRun, code: number, firstLine: RegExp): void {
  expect(run.code, run.stderr).toBe(code);
  const lines = run.stderr.trim().split("\n");
  expect(lines[0]).toMatch(/^dbcrypt: error: /);
  expect(lines[0]).toMatch(firstLine);
  expect(run.stderr).not.toMatch(/^\s+at /m);
  expect(run.stdout).toBe("");
}

function siblingFiles(path: string): string[] {
  const dir = join(path, "..");
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

interface Seeded {
  database: CreatedTestDatabase;
  db: TestDb;
  url: string;
  keyA: TestKey;
  /** The data as it must still be after the test; a test that changes data itself re-takes it. */
  before: string;
}

/**
 * A database filled by `populate`: fresh for every test ("each"), or shared by tests that only
 * expect refusals ("all"). After every test the data must be as it was and no lock file may be
 * left behind: a refused run writes nothing.
 */
function databaseFixture(kind: EngineKind, label: string, scope: "each" | "all", populate: (seeded: Seeded) => Promise<void>): Seeded {
  const seeded = {} as Seeded;
  const setUp = async () => {
    seeded.database = await createTestDatabase(kind, label);
    seeded.db = await openTestDb(seeded.database.target);
    seeded.url = dbArg(seeded.database.target);
    await populate(seeded);
    seeded.before = await snapshot(seeded.db);
  };
  const expectUnchanged = async () => {
    expect(await snapshot(seeded.db)).toBe(seeded.before);
    const target = seeded.database.target;
    if (target.kind === "sqlite") expect(siblingFiles(target.path).filter((name) => name.includes("lock"))).toEqual([]);
  };
  const tearDown = async () => {
    await seeded.db?.close();
    await seeded.database?.cleanup();
  };
  if (scope === "all") {
    beforeAll(setUp);
    afterEach(expectUnchanged);
    afterAll(tearDown);
  } else {
    beforeEach(setUp);
    afterEach(async () => {
      try {
        await expectUnchanged();
      } finally {
        await tearDown();
      }
    });
  }
  return seeded;
}

/** A Coder-shaped database with data under key A (see databaseFixture). */
function seededDatabase(kind: EngineKind, label: string, scope: "each" | "all", prepare?: (seeded: Seeded) => Promise<void>): Seeded {
  return databaseFixture(kind, label, scope, async (seeded) => {
    await createCoderSchema(seeded.db);
    seeded.keyA = keyWithSymbols();
    const manifest = await seedCoderData(seeded.db, { users: 2, key: seeded.keyA });
    for (const entry of manifest.entries) if (entry.plaintext !== null) registerSecret(entry.plaintext);
    await prepare?.(seeded);
  });
}

/** An application database that has not adopted the scheme: no keys table. */
function databaseWithoutKeysTable(kind: EngineKind, scope: "each" | "all"): Seeded {
  return databaseFixture(kind, "nokeys", scope, async ({ db }) => {
    await db.exec("CREATE TABLE notes (id integer PRIMARY KEY, body text)");
    await db.exec("INSERT INTO notes VALUES (1, 'hello')");
  });
}

describe.each(ENGINE_KINDS)("malformed keys on %s", (kind) => {
  const seeded = seededDatabase(kind, "badkeys", "all");

  const malformed: [string, () => { args: string[]; secret?: string }, RegExp][] = [
    ["URL-safe alphabet", () => {
      const text = seeded.keyA.base64.replace(/\+/g, "-").replace(/\//g, "_");
      return { args: ["rotate", "--new-key", freshKey().base64, "--old-keys", text], secret: text };
    }, /--old-keys key 1 .*URL-safe/],
    ["missing padding", () => {
      const text = freshKey().base64.replace(/=+$/, "");
      return { args: ["rotate", "--new-key", text], secret: text };
    }, /--new-key .*padding/],
    ["31 bytes", () => {
      const bytes = randomBytes(31);
      registerSecret(bytes);
      return { args: ["decrypt", "--keys", `${seeded.keyA.base64},${bytes.toString("base64")}`] };
    }, /--keys key 2 decodes to 31 bytes/],
    ["33 bytes", () => {
      const bytes = randomBytes(33);
      registerSecret(bytes);
      return { args: ["status", "--keys", bytes.toString("base64")] };
    }, /--keys key 1 decodes to 33 bytes/],
    ["junk", () => ({ args: ["rotate", "--new-key", "not a key at all!"], secret: "not a key at all!" }), /--new-key contains characters that are not standard base64/],
    ["a stray space", () => ({ args: ["rotate", "--new-key", ` ${seeded.keyA.base64}`] }), /--new-key contains characters/],
    ["an empty list entry", () => ({ args: ["decrypt", "--keys", `,${seeded.keyA.base64}`] }), /--keys key 1 is empty/],
    ["an empty entry mid-list", () => ({ args: ["rotate", "--new-key", freshKey().base64, "--old-keys", `${seeded.keyA.base64},,${freshKey().base64}`] }), /--old-keys key 2 is empty/],
    ["an empty --new-key", () => ({ args: ["rotate", "--new-key", "", "--old-keys", seeded.keyA.base64] }), /--new-key/],
    ["an empty --keys", () => ({ args: ["decrypt", "--keys", ""] }), /--keys/],
    ["two keys with one id", () => ({ args: ["rotate", "--new-key", freshKey().base64, "--old-keys", `${seeded.keyA.base64},${seeded.keyA.base64}`] }), /--old-keys key 2 .*key 1/],
    ["two keys with one id (decrypt)", () => ({ args: ["decrypt", "--keys", `${seeded.keyA.base64},${freshKey().base64},${seeded.keyA.base64}`] }), /--keys key 3 .*key 1/],
    ["the new key repeated in --old-keys", () => ({ args: ["rotate", "--new-key", seeded.keyA.base64, "--old-keys", `${freshKey().base64},${seeded.keyA.base64}`] }), /--old-keys key 2 is the same as the new key/],
    ["two keys given to --new-key", () => ({ args: ["rotate", "--new-key", `${seeded.keyA.base64},${freshKey().base64}`] }), /--new-key takes exactly one key/],
  ];

  // Each of these fails before the database is opened, so they can run side by side.
  it.concurrent.each(malformed)("rejects %s with exit 2, naming the flag and position", async (_label, build, message) => {
    const { args, secret } = build();
    if (secret !== undefined) registerSecret(secret);
    const confirm = args[0] === "status" ? [] : ["--yes"];
    const run = await runCli([...args, "--db", seeded.url, ...confirm]);
    expectCleanError(run, 2, message);
  });

  it("reports a malformed key as JSON too, without echoing it", async () => {
    const text = seeded.keyA.base64.replace(/=$/, "");
    registerSecret(text);
    const run = await runCli(["rotate", "--db", seeded.url, "--new-key", text, "--yes", "--json"]);
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout)).toMatchObject({ error: { code: "bad_key", exitCode: 2 } });
  });

  it("never decrypts with status's DBCRYPT_KEYS; decrypt reads only DBCRYPT_DECRYPT_KEYS", async () => {
    const wrongVariable = await runCli(["decrypt", "--db", seeded.url, "--yes"], { env: { DBCRYPT_KEYS: seeded.keyA.base64 } });
    expectCleanError(wrongVariable, 2, /--keys is required/);
    const rightVariable = await runCli(["decrypt", "--db", seeded.url, "--dry-run"], { env: { DBCRYPT_DECRYPT_KEYS: seeded.keyA.base64 } });
    expect(rightVariable.code, rightVariable.stderr).toBe(0);
    expect(rightVariable.stdout).toContain(`${seeded.keyA.id} -> plaintext`);
  });

  it("names the flag when a key file cannot be read", async () => {
    const run = await runCli(["rotate", "--db", seeded.url, "--new-key", "@/nonexistent/dbcrypt.key", "--yes"]);
    expectCleanError(run, 2, /--new-key: cannot read key file \/nonexistent\/dbcrypt\.key: ENOENT/);
  });

  it("rejects a malformed key given in the environment", async () => {
    const run = await runCli(["rotate", "--db", seeded.url, "--yes"], { env: { DBCRYPT_NEW_KEY: "AAAA" } });
    expectCleanError(run, 2, /decodes to 3 bytes/);
  });

  it("refuses rotate while an active key was not supplied (exit 3), naming the key", async () => {
    const run = await runCli(["rotate", "--db", seeded.url, "--new-key", freshKey().base64, "--yes"]);
    expectCleanError(run, 3, new RegExp(`active key\\(s\\) ${seeded.keyA.id} that were not supplied`));
  });

  it("refuses decrypt with only an unrelated key (exit 3)", async () => {
    const run = await runCli(["decrypt", "--db", seeded.url, "--keys", freshKey().base64, "--yes"]);
    expectCleanError(run, 3, new RegExp(seeded.keyA.id));
  });

});

describe.each(ENGINE_KINDS)("keys that do not match the database on %s", (kind) => {
  const seeded = seededDatabase(kind, "mismatch", "each");

  it("refuses when the canary does not decrypt under the supplied key (exit 3)", async () => {
    // The keys table row for A was written by a different key: the key given for A is the wrong one.
    await seeded.db.query("UPDATE dbcrypt_keys SET test = $1 WHERE active_key_digest = $2", [sealValue(randomKey().bytes, "coder"), seeded.keyA.id]);
    seeded.before = await snapshot(seeded.db);
    const rotate = await runCli(["rotate", "--db", seeded.url, "--new-key", freshKey().base64, "--old-keys", seeded.keyA.base64, "--yes"]);
    expectCleanError(rotate, 3, /canary/);
    const status = await runCli(["status", "--db", seeded.url, "--keys", seeded.keyA.base64]);
    expect(status.code).toBe(3);
    expect(status.stdout).toContain(`canary of active key ${seeded.keyA.id}`);
  });

  it("refuses a revoked key as the new key (exit 3)", async () => {
    const revoked = freshKey();
    await seeded.db.query("INSERT INTO dbcrypt_keys (number, active_key_digest, revoked_key_digest, created_at, revoked_at, test) VALUES (2, NULL, $1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, $2)", [revoked.id, sealValue(revoked.bytes, "coder")]);
    seeded.before = await snapshot(seeded.db);
    const run = await runCli(["rotate", "--db", seeded.url, "--new-key", revoked.base64, "--old-keys", seeded.keyA.base64, "--yes"]);
    expectCleanError(run, 3, new RegExp(`new key ${revoked.id} has been revoked`));
  });

  it("refuses data under a key id the keys table does not know (exit 3)", async () => {
    // No foreign key here, so nothing stops the application from writing under any key id.
    await seeded.db.exec("CREATE TABLE loose_secrets (id integer PRIMARY KEY, token text, token_key_id text)");
    const stray = randomKey();
    await seeded.db.query("INSERT INTO loose_secrets (id, token, token_key_id) VALUES (1, $1, $2), (2, 'plain', NULL)", [sealValue(stray.bytes, "stray secret"), stray.id]);
    seeded.before = await snapshot(seeded.db);
    const rotate = await runCli(["rotate", "--db", seeded.url, "--new-key", freshKey().base64, "--old-keys", seeded.keyA.base64, "--yes"]);
    expectCleanError(rotate, 3, /not supplied/);
    expect(rotate.stderr).toContain(`loose_secrets.token: 1 value(s) under key ${stray.id}`);
    const decrypt = await runCli(["decrypt", "--db", seeded.url, "--keys", seeded.keyA.base64, "--yes"]);
    expectCleanError(decrypt, 3, /not supplied/);
    const status = await runCli(["status", "--db", seeded.url]);
    expect(status.code).toBe(3);
    expect(status.stdout).toContain(`loose_secrets.token: 1 value(s) under key ${stray.id}, which is not in dbcrypt_keys`);
  });
});

describe.concurrent("key validation comes before any database access", () => {
  it.each([
    ["rotate", ["--new-key", "AAAA"]],
    ["rotate", ["--new-key", "KEY", "--old-keys", "KEY"]],
    ["rotate", ["--new-key", "OTHER", "--old-keys", "KEY,KEY"]],
    ["decrypt", ["--keys", "KEY,KEY"]],
    ["decrypt", []],
    ["status", ["--keys", "KEY,KEY"]],
    ["status", ["--verify"]],
  ])("%s %j against an unreachable server exits 2, not 1", async (command, template) => {
    const key = freshKey().base64;
    const other = freshKey().base64;
    const args = template.map((arg) => arg.replace("OTHER", other).replace(/KEY/g, key));
    const run = await runCli([command, ...args, "--db", UNREACHABLE_PG, "--yes"].filter((arg) => command !== "status" || arg !== "--yes"));
    expectCleanError(run, 2, /--(new-key|old-keys|keys|verify)/);
  });

  it("keys id rejects a malformed key and prints the id of a good one", async () => {
    const bad = await runCli(["keys", "id", "YWJj"]);
    expectCleanError(bad, 2, /key decodes to 3 bytes/);
    const key = freshKey();
    const good = await runCli(["keys", "id", key.base64]);
    expect(good.code).toBe(0);
    expect(good.stdout.trim()).toBe(key.id);
  });

  it.each([
    [["rotate", "--batch-size", "0"]],
    [["rotate", "--batch-size", "1e3"]],
    [["rotate", "--max-duration", "10"]],
    [["rotate", "--frobnicate"]],
    [["rotate", "extra-argument"]],
    [["frobnicate"]],
  ])("rejects bad flags %j with exit 2", async (args) => {
    const run = await runCli([...args, "--db", UNREACHABLE_PG]);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/error: /);
  });
});

describe.each(ENGINE_KINDS)("config files on %s", (kind) => {
  const seeded = seededDatabase(kind, "config", "all");
  let configDir: string;

  beforeEach(() => {
    configDir = mkdtempSync(join(tmpdir(), "dbcrypt-config-"));
  });

  afterEach(() => {
    rmSync(configDir, { recursive: true, force: true });
  });

  function writeConfig(text: string): string {
    const path = join(configDir, "dbcrypt.config.json");
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  }

  it.each([
    ["an unknown top-level key", '{"tabels": {}}', /unknown key "tabels"/],
    ["an unknown table key", '{"tables": {"user_links": {"exclud": true}}}', /unknown key "exclud"/],
    ["a wrong value type", '{"tables": {"user_links": {"exclude": "yes"}}}', /exclude must be true or false/],
    ["invalid JSON", '{"tables": {', /not valid JSON/],
    ["a table that does not exist", '{"tables": {"no_such_table": {"exclude": true}}}', /no_such_table, which does not exist/],
    ["a column that does not exist", '{"tables": {"user_links": {"columns": {"no_such_column": {"keepPlaintext": "blank"}}}}}', /user_links\.no_such_column, which does not exist/],
  ])("rejects a config file with %s (exit 2) and writes nothing", async (_label, text, message) => {
    const run = await runCli(["rotate", "--db", seeded.url, "--config", writeConfig(text), "--new-key", freshKey().base64, "--old-keys", seeded.keyA.base64, "--yes"]);
    expectCleanError(run, 2, message);
  });

  it("rejects a --config path that does not exist (exit 2)", async () => {
    const run = await runCli(["status", "--db", seeded.url, "--config", join(configDir, "missing.json")]);
    expectCleanError(run, 2, /cannot read config file .*ENOENT/);
  });

  it("picks up ./dbcrypt.config.json from the working directory", async () => {
    writeConfig('{"bogus": 1}');
    const run = await runCli(["status", "--db", seeded.url], { cwd: configDir });
    expectCleanError(run, 2, /unknown key "bogus"/);
  });

});

describe.each(ENGINE_KINDS)("tables that cannot be walked by primary key on %s", (kind) => {
  const seeded = seededDatabase(kind, "nopk", "each");

  it("refuses to rotate a table without a primary key (exit 3), naming it; status flags it", async () => {
    await seeded.db.exec("CREATE TABLE keyless_tokens (owner text, token text, token_key_id text REFERENCES dbcrypt_keys (active_key_digest))");
    await seeded.db.query("INSERT INTO keyless_tokens VALUES ('alice', $1, $2), ('alice', $1, $2)", [sealValue(seeded.keyA.bytes, "duplicate row secret"), seeded.keyA.id]);
    seeded.before = await snapshot(seeded.db);
    const rotate = await runCli(["rotate", "--db", seeded.url, "--new-key", freshKey().base64, "--old-keys", seeded.keyA.base64, "--yes"]);
    expectCleanError(rotate, 3, /cannot be processed safely/);
    expect(rotate.stderr).toMatch(/keyless_tokens \(token\) has no primary key/);
    for (const args of [["decrypt", "--keys", seeded.keyA.base64, "--yes"], ["delete", "--yes"], ["keys", "revoke", seeded.keyA.id, "--yes"]]) {
      const run = await runCli([...args, "--db", seeded.url]);
      expect(run.code, args.join(" ")).toBe(3);
      expect(run.stderr).toContain("keyless_tokens");
    }
    expect(await snapshot(seeded.db)).toBe(seeded.before);
    const status = await runCli(["status", "--db", seeded.url]);
    expect(status.code).toBe(3);
    expect(status.stdout).toContain("refused: keyless_tokens");
  });

  it("walks a table without a primary key by its unique NOT NULL column", async () => {
    await seeded.db.exec("CREATE TABLE handle_tokens (handle text NOT NULL UNIQUE, token text, token_key_id text REFERENCES dbcrypt_keys (active_key_digest))");
    const plaintexts = ["first handle secret", "second handle secret"];
    plaintexts.forEach(registerSecret);
    await seeded.db.query("INSERT INTO handle_tokens VALUES ('a', $1, $3), ('b', $2, $3), ('c', NULL, NULL)", [sealValue(seeded.keyA.bytes, plaintexts[0]!), sealValue(seeded.keyA.bytes, plaintexts[1]!), seeded.keyA.id]);
    const keyB = freshKey();
    const rotate = await runCli(["rotate", "--db", seeded.url, "--new-key", keyB.base64, "--old-keys", seeded.keyA.base64, "--yes"]);
    expect(rotate.code, rotate.stderr).toBe(0);
    const rows = await seeded.db.query<{ handle: string; token: string | null; token_key_id: string | null }>("SELECT handle, token, token_key_id FROM handle_tokens ORDER BY handle");
    expect(rows.map((row) => [row.handle, row.token_key_id])).toEqual([["a", keyB.id], ["b", keyB.id], ["c", null]]);
    expect(rows.slice(0, 2).map((row) => openValue(keyB.bytes, row.token!))).toEqual(plaintexts);
    seeded.before = await snapshot(seeded.db); // this rotate was meant to write
  });
});

describe.each(ENGINE_KINDS)("databases that cannot be used on %s", (kind) => {
  const empty = databaseWithoutKeysTable(kind, "all");

  it.each([
    [["rotate", "--new-key", "NEW", "--yes"]],
    [["decrypt", "--keys", "NEW", "--yes"]],
    [["delete", "--yes"]],
    [["keys", "list"]],
    [["keys", "revoke", "abcdef0", "--yes"]],
  ])("refuses %j without a dbcrypt_keys table (exit 3) and writes nothing", async (template) => {
    const run = await runCli([...template.map((arg) => (arg === "NEW" ? freshKey().base64 : arg)), "--db", empty.url]);
    expectCleanError(run, 3, /the database has no dbcrypt_keys table/);
    expect(run.stderr).toContain("keys init");
  });

  it("status reports the missing keys table as a problem (exit 3)", async () => {
    const run = await runCli(["status", "--db", empty.url, "--json"]);
    expect(run.code).toBe(3);
    expect(JSON.parse(run.stdout)).toMatchObject({ healthy: false, keysTable: { name: "dbcrypt_keys", exists: false } });
  });

});

describe.each(ENGINE_KINDS)("keys init on %s", (kind) => {
  const empty = databaseWithoutKeysTable(kind, "each");

  it("keys init creates Coder's keys table; a second run is a no-op; rotate then works", async () => {
    const init = await runCli(["keys", "init", "--db", empty.url]);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toContain("created the keys table");
    const columns = kind === "postgres"
      ? await empty.db.query<{ name: string; type: string; nullable: string }>("SELECT column_name AS name, data_type AS type, is_nullable AS nullable FROM information_schema.columns WHERE table_name = 'dbcrypt_keys' ORDER BY ordinal_position")
      : await empty.db.query<{ name: string; type: string; nullable: string }>("SELECT name, type, CASE \"notnull\" WHEN 1 THEN 'NO' ELSE 'YES' END AS nullable FROM pragma_table_info('dbcrypt_keys')");
    expect(columns.map((column) => [column.name, column.nullable])).toEqual([
      ["number", "NO"], ["active_key_digest", "YES"], ["revoked_key_digest", "YES"], ["created_at", "YES"], ["revoked_at", "YES"], ["test", "NO"],
    ]);
    if (kind === "postgres") expect(columns.map((column) => column.type)).toEqual(["integer", "text", "text", "timestamp with time zone", "timestamp with time zone", "text"]);
    // The digests are unique, as in Coder's table: the foreign keys need that.
    await empty.db.exec("INSERT INTO dbcrypt_keys (number, active_key_digest, test) VALUES (100, 'abcdef0', 'x')");
    await expect(empty.db.exec("INSERT INTO dbcrypt_keys (number, active_key_digest, test) VALUES (101, 'abcdef0', 'x')")).rejects.toThrow(/unique/i);
    await empty.db.exec("DELETE FROM dbcrypt_keys");

    const before = await snapshot(empty.db);
    const again = await runCli(["keys", "init", "--db", empty.url, "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ version: 1, outcome: "exists" });
    expect(await snapshot(empty.db)).toBe(before);

    const key = freshKey();
    const rotate = await runCli(["rotate", "--db", empty.url, "--new-key", key.base64, "--yes"]);
    expect(rotate.code, rotate.stderr).toBe(0);
    const keys = await empty.db.query<{ number: number; active_key_digest: string; test: string }>("SELECT number, active_key_digest, test FROM dbcrypt_keys");
    expect(keys.map((row) => [Number(row.number), row.active_key_digest])).toEqual([[1, key.id]]);
    expect(openValue(key.bytes, keys[0]!.test)).toBe("coder");
    empty.before = await snapshot(empty.db); // init and rotate were meant to write
  });
});

describe.concurrent("unreachable and missing databases", () => {
  it("reports an unreachable server (exit 1) without printing the password", async () => {
    registerSecret("hunter2-not-printed");
    const run = await runCli(["status", "--db", "postgres://postgres:hunter2-not-printed@127.0.0.1:1/x"]);
    expectCleanError(run, 1, /cannot connect to PostgreSQL at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/x/);
  });

  it("reports a database name that does not exist (exit 2)", async () => {
    const run = await runCli(["status", "--db", `postgres://postgres@127.0.0.1:5432/dbcrypt_no_such_db_${randomBytes(4).toString("hex")}`]);
    expectCleanError(run, 2, /database in .* does not exist/);
  });

  it("reports rejected credentials (exit 1): an unknown role under trust auth", async () => {
    registerSecret("s3cret-password-x");
    const run = await runCli(["status", "--db", "postgres://no_such_role_dbcrypt:s3cret-password-x@127.0.0.1:5432/postgres"]);
    expectCleanError(run, 1, /rejected the credentials/);
  });

  it("reports a --db that is neither PostgreSQL nor SQLite (exit 2), and a missing --db", async () => {
    expectCleanError(await runCli(["status", "--db", "mysql://localhost/x"]), 2, /cannot tell what database/);
    expectCleanError(await runCli(["status"]), 2, /no database given/);
  });

  it.each([
    [["status"]],
    [["keys", "init"]],
    [["keys", "list"]],
    [["rotate", "--new-key", "NEW", "--yes"]],
    [["delete", "--yes"]],
  ])("never creates a missing SQLite file: %j exits 2", async (template) => {
    const dir = mkdtempSync(join(tmpdir(), "dbcrypt-missing-"));
    try {
      const path = join(dir, "typo.sqlite");
      const run = await runCli([...template.map((arg) => (arg === "NEW" ? freshKey().base64 : arg)), "--db", `sqlite:${path}`]);
      expectCleanError(run, 2, /SQLite database .*typo\.sqlite does not exist/);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Read-only SQLite. Root ignores permission bits (access(2) says writable and writes succeed), so
 * as root the CLI runs as the unprivileged `nobody` user; otherwise as the current user.
 */
describe("read-only SQLite files and directories", () => {
  const asRoot = process.getuid?.() === 0;
  const runAs = asRoot ? { uid: 65534, gid: 65534 } : {};
  let dir: string;
  let path: string;
  let key: TestKey;
  let plaintextRows: string;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "dbcrypt-ro-"));
    path = join(dir, "app.sqlite");
    const db = await openTestDb({ kind: "sqlite", path });
    await createCoderSchema(db);
    key = freshKey();
    const manifest = await seedCoderData(db, { users: 1, key: null });
    for (const entry of manifest.entries) if (entry.plaintext !== null) registerSecret(entry.plaintext);
    await db.close();
    plaintextRows = fileDigest(path);
  });

  afterEach(() => {
    chmodSync(dir, 0o700);
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses to write a read-only file (exit 2) but still reads it for status and --dry-run", async () => {
    chmodSync(path, 0o444);
    chmodSync(dir, asRoot ? 0o777 : 0o755);
    const rotate = await runCliAs(["rotate", "--db", path, "--new-key", key.base64, "--yes"], runAs);
    expectCleanError(rotate, 2, /SQLite database file .*app\.sqlite is not writable/);
    const status = await runCliAs(["status", "--db", path, "--json"], runAs);
    expect(JSON.parse(status.stdout).columns.length, status.stderr).toBeGreaterThan(0);
    const dryRun = await runCliAs(["rotate", "--db", path, "--new-key", key.base64, "--dry-run"], runAs);
    expect(dryRun.code, dryRun.stderr).toBe(0);
    expect(dryRun.stdout).toContain(`plaintext -> ${key.id}`);
    expect(fileDigest(path)).toBe(plaintextRows);
    expect(readdirSync(dir)).toEqual(["app.sqlite"]);
  });

  it("refuses a writable file in a read-only directory (exit 2): SQLite needs it for its journal", async () => {
    chmodSync(path, 0o666);
    chmodSync(dir, 0o555);
    const rotate = await runCliAs(["rotate", "--db", path, "--new-key", key.base64, "--yes"], runAs);
    expectCleanError(rotate, 2, /SQLite database directory .* is not writable/);
    expect(fileDigest(path)).toBe(plaintextRows);
  });
});

function fileDigest(path: string): string {
  return readFileSync(path).toString("base64");
}

/** runCli with a different user id: the shared helper has no option for it. Checks leaks the same way. */
async function runCliAs(args: string[], ids: { uid?: number; gid?: number }): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: "1", NO_COLOR: "1" };
  delete env.DBCRYPT_DATABASE_URL;
  delete env.DATABASE_URL;
  const child = spawn(process.execPath, [CLI_PATH, ...args], { env, cwd: tmpdir(), stdio: ["ignore", "pipe", "pipe"], ...ids });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr.on("data", (chunk: Buffer) => { stderr += chunk.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  expect(findLeaks(stdout + stderr)).toEqual([]);
  return { code, stdout, stderr };
}

async function valuesUnder(db: TestDb, keyId: string): Promise<number> {
  let total = 0;
  for (const column of CODER_ENCRYPTED_COLUMNS) {
    const [row] = await db.query<{ n: string | number }>(`SELECT count(*) AS n FROM ${column.table} WHERE ${column.keyIdColumn} = $1`, [keyId]);
    total += Number(row?.n ?? 0);
  }
  return total;
}

describe.each(ENGINE_KINDS)("confirmation, dry runs and the keys subcommands on %s", (kind) => {
  const unused = freshKey();
  const seeded = seededDatabase(kind, "workflow", "all", ({ db }) => ensureActiveKeyRow(db, unused));

  it.each([
    [["rotate", "--new-key", "NEW", "--old-keys", "A"]],
    [["decrypt", "--keys", "A"]],
    [["delete"]],
  ])("%j without a terminal and without --yes exits 2 naming --yes, and writes nothing", async (template) => {
    const run = await runCli([...template.map((arg) => (arg === "NEW" ? freshKey().base64 : arg === "A" ? `${seeded.keyA.base64},${unused.base64}` : arg)), "--db", seeded.url]);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split("\n").find((line) => line.startsWith("dbcrypt: error:"))).toContain("--yes");
  });

  it("keys revoke without a terminal and without --yes exits 2 naming --yes", async () => {
    const run = await runCli(["keys", "revoke", unused.id, "--db", seeded.url]);
    expectCleanError(run, 2, /--yes/);
  });

  it("--dry-run prints the plan, exits 0 and writes nothing", async () => {
    const keyB = freshKey();
    const run = await runCli(["rotate", "--db", seeded.url, "--new-key", keyB.base64, "--old-keys", `${seeded.keyA.base64},${unused.base64}`, "--dry-run"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("dry run, nothing written");
    expect(run.stdout).toMatch(new RegExp(`user_links\\.oauth_access_token\\s+${seeded.keyA.id} -> ${keyB.id}: \\d+ value`));
    expect(run.stdout).toContain(`insert key ${keyB.id}`);
    expect(run.stdout).toContain(`revoke key ${seeded.keyA.id}`);
    expect(run.stdout).toContain(`revoke key ${unused.id}`);
    const json = await runCli(["delete", "--db", seeded.url, "--dry-run", "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const summary = JSON.parse(json.stdout);
    expect(summary).toMatchObject({ command: "delete", status: "dry-run", rowsWritten: 0 });
    expect(summary.plan.totalRows).toBe(await valuesUnder(seeded.db, seeded.keyA.id));
  });

  it("keys list counts the values under each key", async () => {
    const run = await runCli(["keys", "list", "--db", seeded.url, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    const listing = JSON.parse(run.stdout) as { keys: { activeKeyDigest: string; state: string; values: number; number: number }[] };
    expect(listing.keys.map((key) => [key.number, key.activeKeyDigest, key.state, key.values])).toEqual([
      [1, seeded.keyA.id, "active", await valuesUnder(seeded.db, seeded.keyA.id)],
      [2, unused.id, "active", 0],
    ]);
    expect(JSON.stringify(listing)).not.toContain('"test"');
    const text = await runCli(["keys", "list", "--db", seeded.url]);
    expect(text.stdout).toMatch(new RegExp(`#1 active\\s+${seeded.keyA.id}\\s+values: ${await valuesUnder(seeded.db, seeded.keyA.id)}`));
  });
});

describe.each(ENGINE_KINDS)("keys revoke on %s", (kind) => {
  const seeded = seededDatabase(kind, "revoke", "each");

  it("keys revoke: unknown id exits 2; an unused key is revoked; again is 'already revoked' (exit 0)", async () => {
    const unknown = await runCli(["keys", "revoke", "abcdef0", "--db", seeded.url, "--yes"]);
    expectCleanError(unknown, 2, /there is no key abcdef0 in dbcrypt_keys/);
    const notAnId = await runCli(["keys", "revoke", seeded.keyA.base64, "--db", seeded.url, "--yes"]);
    expectCleanError(notAnId, 2, /takes a key id/);

    const unused = freshKey();
    await ensureActiveKeyRow(seeded.db, unused);
    const revoked = await runCli(["keys", "revoke", unused.id, "--db", seeded.url, "--yes"]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout.trim()).toBe(`revoked key ${unused.id}`);
    const rows = await seeded.db.query<{ active_key_digest: string | null; revoked_key_digest: string | null; revoked_at: unknown }>(
      "SELECT active_key_digest, revoked_key_digest, revoked_at FROM dbcrypt_keys WHERE revoked_key_digest = $1", [unused.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.active_key_digest).toBeNull();
    expect(rows[0]!.revoked_at).not.toBeNull();

    seeded.before = await snapshot(seeded.db);
    const again = await runCli(["keys", "revoke", unused.id, "--db", seeded.url, "--yes", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ version: 1, keyId: unused.id, outcome: "already-revoked" });
    // The key still in use stays active.
    expect(await valuesUnder(seeded.db, seeded.keyA.id)).toBeGreaterThan(0);
  });
});

/**
 * The prompt needs a terminal: util-linux `script` gives the CLI a pseudo-terminal. Where it is
 * missing (not Linux), these tests are skipped: Node has no pseudo-terminal of its own.
 */
const SCRIPT = "/usr/bin/script";
const hasPseudoTerminal = process.platform === "linux" && existsSync(SCRIPT);

/** Runs the CLI on a pseudo-terminal and types `answer` once the question is on screen. */
async function runOnTerminal(args: string[], answer: string): Promise<CliRun> {
  const quote = (part: string) => `'${part.replace(/'/g, "'\\''")}'`;
  const command = `stty cols 160 rows 50; ${[process.execPath, CLI_PATH, ...args].map(quote).join(" ")}`;
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", TERM: "xterm" };
  for (const name of ["CI", "DBCRYPT_DATABASE_URL", "DATABASE_URL"]) delete env[name];
  const child = spawn(SCRIPT, ["-qec", command, "/dev/null"], { env, stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  let answered = false;
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
    if (!answered && /Yes \/ |Type "/.test(output)) {
      answered = true;
      child.stdin.write(answer);
    }
  });
  child.stderr.on("data", (chunk: Buffer) => { output += chunk.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  expect(findLeaks(output)).toEqual([]);
  expect(answered, output).toBe(true);
  return { code, stdout: output, stderr: output };
}

// Skipped only where util-linux `script` is missing (no way to give the CLI a real terminal there);
// it is present on these machines and in CI, so these tests always run here.
describe.skipIf(!hasPseudoTerminal).each(ENGINE_KINDS)("confirmation on a terminal on %s", (kind) => {
  const seeded = seededDatabase(kind, "terminal", "each");

  it("answers No when the operator just presses Enter", async () => {
    const run = await runOnTerminal(["rotate", "--db", seeded.url, "--new-key", freshKey().base64, "--old-keys", seeded.keyA.base64], "\r");
    expect(run.code).toBe(2);
    expect(run.stdout).toContain("cancelled: nothing was written");
    expect(run.stdout).toContain(`${seeded.keyA.id} -> `);
  });

  it("makes the operator type the command name for decrypt; 'yes' is not enough", async () => {
    const run = await runOnTerminal(["decrypt", "--db", seeded.url, "--keys", seeded.keyA.base64], "yes\r");
    expect(run.code).toBe(2);
    expect(run.stdout).toContain("cancelled: nothing was written");
  });

  it("goes ahead when the operator types the command name", async () => {
    const run = await runOnTerminal(["delete", "--db", seeded.url], "delete\r");
    expect(run.code, run.stdout).toBe(0);
    expect(await valuesUnder(seeded.db, seeded.keyA.id)).toBe(0);
    seeded.before = await snapshot(seeded.db); // this delete was meant to write
  });
});

describe.concurrent("keys generate and keys id", () => {
  it("generates 32 random bytes as standard base64, and its id matches keys id", async () => {
    const first = await runCli(["keys", "generate"]);
    expect(first.code).toBe(0);
    const text = first.stdout.trim();
    expect(text).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    const bytes = Buffer.from(text, "base64");
    expect(bytes).toHaveLength(32);
    const id = /^key id ([0-9a-f]{7})$/.exec(first.stderr.trim())?.[1];
    expect(id).toBe(keyIdOf(bytes));
    const viaId = await runCli(["keys", "id", text]);
    expect(viaId.stdout.trim()).toBe(id);
    const dir = mkdtempSync(join(tmpdir(), "dbcrypt-keyfile-"));
    try {
      writeFileSync(join(dir, "key"), `${text}\n`, { mode: 0o600 });
      const viaFile = await runCli(["keys", "id", `@${join(dir, "key")}`, "--json"]);
      expect(JSON.parse(viaFile.stdout)).toEqual({ id, source: `@${join(dir, "key")}` });
      const viaStdin = await runCli(["keys", "id", "@-"], { input: `${text}\n` });
      expect(viaStdin.stdout.trim()).toBe(id);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const second = await runCli(["keys", "generate", "--json"]);
    const parsed = JSON.parse(second.stdout) as { key: string; id: string };
    expect(parsed.key).not.toBe(text);
    expect(parsed.id).toBe(testKeyFrom(Buffer.from(parsed.key, "base64")).id);
  });
});
