/**
 * AtelyaOS (libsodium secretbox, per-workspace keys) and Company Agents (AES-256-GCM under a
 * master key) through the built CLI on both databases: no key id is stored, so every key is found
 * by trial decryption. Cells are seeded and checked with independent implementations (tweetnacl,
 * node:crypto); the lifecycle is Coder's: rotate → rotate → decrypt → rotate → delete, with the
 * refusals, the census per key and the keys table archiving the keys rotated away from.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dbArg, registerSecret, runCli } from "../support/cli.js";
import { freshKey, keyRows } from "../support/fixtures.js";
import { APP_SHAPES, ATELYAOS, expectAppCells, isLegacy, seedApp, type AppCell, type AppShape } from "../support/app-fixtures.js";
import { openSecretbox, sealSecretbox } from "../support/app-crypto.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";
import type { TestKey } from "../support/coder-crypto.js";

const ROWS = 40;

describe.each(APP_SHAPES.flatMap((app) => ENGINE_KINDS.map((kind) => [app.name, kind, app] as const)))("%s on %s", (_name, kind, app) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;
  let dir: string;
  let cells: AppCell[];
  const keys = { a: freshKey(), b: freshKey(), c: freshKey(), d: freshKey() };
  const keyFile = (key: TestKey) => `@${join(dir, `${key.id}.key`)}`;
  const cli = (args: string[]) => runCli([...args, "--db", url, "--preset", app.name]);
  const encryptedPerTable = () => Array.from({ length: ROWS }, (_, index) => index + 1).filter((index) => index % 10 !== 0 && index % 7 !== 0).length;
  const legacyPerTable = () => Array.from({ length: ROWS }, (_, index) => index + 1).filter((index) => index % 10 !== 0 && index % 7 === 0).length;

  beforeEach(async () => {
    database = await createTestDatabase(kind, `app_${app.name.replace("-", "_")}`);
    db = await openTestDb(database.target);
    url = dbArg(database.target);
    dir = mkdtempSync(join(tmpdir(), "dbcrypt-app-"));
    for (const key of Object.values(keys)) writeFileSync(join(dir, `${key.id}.key`), `${key.base64}\n`, { mode: 0o600 });
    cells = await seedApp(db, app, keys.a, ROWS);
  });

  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await db.close();
    await database.cleanup();
  });

  it("keys id and keys generate print the id this scheme gives the key", async () => {
    const id = await runCli(["keys", "id", "--preset", app.name, keyFile(keys.a)]);
    expect(id.code, id.stderr).toBe(0);
    expect(id.stdout.trim()).toBe(app.keyId(keys.a));
    const generated = await runCli(["keys", "generate", "--preset", app.name, "--json"]);
    const made = JSON.parse(generated.stdout) as { key: string; id: string };
    expect(made.id).toBe(app.keyId({ bytes: Buffer.from(made.key, "base64"), base64: made.key, id: "" }));
  });

  it("census without keys counts encrypted values as unidentified; with the key, under its id", async () => {
    const init = await cli(["keys", "init"]);
    expect(init.code, init.stderr).toBe(0);
    const blind = await cli(["status", "--json"]);
    expect(blind.code, blind.stdout + blind.stderr).toBe(0);
    const blindColumns = JSON.parse(blind.stdout).columns;
    expect(blindColumns).toHaveLength(app.columns.length);
    for (const column of blindColumns) {
      expect(column).toMatchObject({ keyIdColumn: null, encrypted: { unidentified: encryptedPerTable() }, plaintext: { toEncrypt: legacyPerTable(), nulls: ROWS / 10 } });
    }
    const seen = await cli(["status", "--keys", keyFile(keys.a), "--verify", "--json"]);
    // The keys table is dbcrypt's record, which the application does not keep: a key missing
    // from it is not a problem where values carry no key id.
    expect(seen.code, seen.stdout).toBe(0);
    const report = JSON.parse(seen.stdout);
    for (const column of report.columns) expect(column.encrypted).toEqual({ [app.keyId(keys.a)]: encryptedPerTable() });
    expect(report.verified.values).toBe(encryptedPerTable() * app.columns.length);
    const wrongKey = await cli(["status", "--keys", keyFile(keys.b), "--json"]);
    expect(wrongKey.code).toBe(3);
    expect(JSON.parse(wrongKey.stdout).problems.join("\n")).toMatch(/none of the supplied keys opens/);
  });

  it("rotate → rotate → decrypt → rotate → delete, refusing what it was not given and archiving old keys", async () => {
    expect((await cli(["keys", "init"])).code).toBe(0);
    // Without the key the data is under, nothing is written.
    const refused = await cli(["rotate", "--new-key", keyFile(keys.b), "--yes", "--json"]);
    expect(refused.code).toBe(3);
    expect(JSON.parse(refused.stdout).error).toMatchObject({ code: "unknown_key" });
    await expectAppCells(db, app, cells, keys.a, { asSeeded: true });
    expect(await keyRows(db)).toEqual([]);

    const first = await cli(["rotate", "--new-key", keyFile(keys.b), "--old-keys", keyFile(keys.a), "--yes", "--batch-size", "7", "--json"]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ status: "done", valuesWritten: (encryptedPerTable() + legacyPerTable()) * app.columns.length, keysRevoked: [app.keyId(keys.a)] });
    // Re-encrypted cells keep the spelling the application wrote; the legacy plaintext is encrypted.
    await expectAppCells(db, app, cells.filter((cell) => !isLegacy(cell)), keys.b, { spellingKept: true });
    await expectAppCells(db, app, cells, keys.b);
    expect((await keyRows(db)).map((row) => [row.active_key_digest, row.revoked_key_digest])).toEqual([[null, app.keyId(keys.a)], [app.keyId(keys.b), null]]);

    const verify = await cli(["status", "--keys", keyFile(keys.b), "--verify", "--require-key", app.keyId(keys.b)]);
    expect(verify.code, verify.stdout).toBe(0);

    const second = await cli(["rotate", "--new-key", keyFile(keys.c), "--old-keys", keyFile(keys.b), "--yes"]);
    expect(second.code, second.stderr).toBe(0);
    await expectAppCells(db, app, cells, keys.c);
    const again = await cli(["rotate", "--new-key", keyFile(keys.c), "--old-keys", keyFile(keys.b), "--yes", "--json"]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).status).toBe("nothing-to-do");

    const decrypt = await cli(["decrypt", "--keys", keyFile(keys.c), "--yes"]);
    expect(decrypt.code, decrypt.stderr).toBe(0);
    await expectAppCells(db, app, cells, null);
    expect((await keyRows(db)).every((row) => row.active_key_digest === null)).toBe(true);

    // A revoked key is never used again (Coder's rule), so encryption comes back under a new one.
    const reused = await cli(["rotate", "--new-key", keyFile(keys.a), "--yes", "--json"]);
    expect(reused.code).toBe(3);
    expect(JSON.parse(reused.stdout).error.code).toBe("key_revoked");
    const reencrypt = await cli(["rotate", "--new-key", keyFile(keys.d), "--yes"]);
    expect(reencrypt.code, reencrypt.stderr).toBe(0);
    await expectAppCells(db, app, cells, keys.d);

    const wiped = await cli(["delete", "--yes", "--json"]);
    expect(wiped.code, wiped.stderr).toBe(0);
    for (const { table } of app.columns) {
      const left = await db.query<{ n: number | string }>(`SELECT count(*) AS n FROM ${table}`);
      expect(Number(left[0]?.n), `${table} keeps its NULL rows`).toBe(ROWS / 10);
    }
    expect((await keyRows(db)).every((row) => row.active_key_digest === null)).toBe(true);
  });

  it("a cell that none of the supplied keys opens stops the run before any write, naming its column", async () => {
    expect((await cli(["keys", "init"])).code).toBe(0);
    const victim = cells.find((cell) => cell.plaintext !== null && !isLegacy(cell)) as AppCell;
    const stranger = app.seal(keys.c, victim);
    await db.query(`UPDATE ${victim.table} SET ${victim.column} = $1 WHERE id = $2`, [stranger, victim.id]);
    const refused = await cli(["rotate", "--new-key", keyFile(keys.b), "--old-keys", keyFile(keys.a), "--yes", "--json"]);
    expect(refused.code).toBe(3);
    const error = JSON.parse(refused.stdout).error;
    expect(error.details.join("\n")).toMatch(new RegExp(`${victim.table}\\.${victim.column}: 1 encrypted value\\(s\\) that none of the supplied keys opens`));
    expect(error.hint).toMatch(/--skip-unopenable/);
    // Nothing at all was written: every other cell is as seeded, and no key was recorded.
    await expectAppCells(db, app, cells.filter((cell) => cell !== victim), keys.a, { asSeeded: true });
    const untouched = await db.query<{ v: string }>(`SELECT ${victim.column} AS v FROM ${victim.table} WHERE id = $1`, [victim.id]);
    expect(untouched[0]?.v).toBe(stranger);
    expect(await keyRows(db)).toEqual([]);
  });

  it("plaintext that looks like ciphertext is refused, then with --skip-unopenable reported and left while the rest moves on", async () => {
    expect((await cli(["keys", "init"])).code).toBe(0);
    // A leftover plaintext API key that decodes as base64 to more than nonce and tag: dbcrypt
    // cannot tell it from a value under a key it was not given.
    const { table, column } = app.columns[0] as AppShape["columns"][number];
    const lookalike = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5z6";
    registerSecret(lookalike);
    const victim = cells.find((cell) => cell.table === table && cell.plaintext !== null && !isLegacy(cell)) as AppCell;
    await db.query(`UPDATE ${table} SET ${column} = $1 WHERE id = $2`, [lookalike, victim.id]);
    const others = cells.filter((cell) => cell !== victim);

    const refused = await cli(["rotate", "--new-key", keyFile(keys.b), "--old-keys", keyFile(keys.a), "--yes"]);
    expect(refused.code).toBe(3);
    await expectAppCells(db, app, others, keys.a, { asSeeded: true });

    const skipped = await cli(["rotate", "--new-key", keyFile(keys.b), "--old-keys", keyFile(keys.a), "--yes", "--skip-unopenable", "--json"]);
    expect(skipped.code, skipped.stderr).toBe(3);
    const result = JSON.parse(skipped.stdout);
    expect(result.status).toBe("failed-rows");
    expect(result.undecryptable).toEqual([expect.objectContaining({ table, rowKey: { id: victim.id }, failure: expect.objectContaining({ column, keyId: null }) })]);
    // The value did not open under the old key, so it is not under it: the old key is revoked.
    expect(result.keysRevoked).toEqual([app.keyId(keys.a)]);
    await expectAppCells(db, app, others, keys.b);
    const left = await db.query<{ v: string }>(`SELECT ${column} AS v FROM ${table} WHERE id = $1`, [victim.id]);
    expect(left[0]?.v).toBe(lookalike);

    const decrypt = await cli(["decrypt", "--keys", keyFile(keys.b), "--yes", "--skip-unopenable", "--json"]);
    expect(decrypt.code).toBe(3);
    expect(JSON.parse(decrypt.stdout).keysRevoked).toEqual([app.keyId(keys.b)]);
    await expectAppCells(db, app, others, null);
  });
});

/**
 * Another application of the same shape needs no code: dbcrypt.config.json names the scheme, its
 * options, the tables and the column holding each row's workspace.
 */
describe.each(ENGINE_KINDS)("a secretbox application described only by dbcrypt.config.json on %s", (kind) => {
  it("census, rotate and decrypt with a custom table, workspace column and cell spelling", async () => {
    const database = await createTestDatabase(kind, "app_config");
    const db = await openTestDb(database.target);
    const dir = mkdtempSync(join(tmpdir(), "dbcrypt-app-config-"));
    const keys = { a: freshKey(), b: freshKey() };
    try {
      for (const key of Object.values(keys)) writeFileSync(join(dir, `${key.id}.key`), `${key.base64}\n`, { mode: 0o600 });
      writeFileSync(join(dir, "dbcrypt.config.json"), JSON.stringify({
        scheme: "secretbox-workspace",
        schemeOptions: { encoding: "base64url-unpadded" },
        preset: "none",
        tables: { notes: { deletePolicy: "delete-row", context: { workspace: "team_id" }, columns: { body: {} } } },
      }));
      await db.exec("CREATE TABLE notes (id integer PRIMARY KEY, team_id text NOT NULL, body text)");
      const plaintexts = new Map<number, string>();
      for (let id = 1; id <= 12; id++) {
        const plaintext = `note ${id} for team ${id % 3}`;
        plaintexts.set(id, plaintext);
        registerSecret(plaintext);
        await db.query("INSERT INTO notes (id, team_id, body) VALUES ($1, $2, $3)", [id, `team-${id % 3}`, id % 4 === 0 ? plaintext : sealSecretbox(keys.a.bytes, `team-${id % 3}`, plaintext, "base64url-unpadded")]);
      }
      const url = dbArg(database.target);
      const run = (args: string[]) => runCli(args, { cwd: dir, env: { DBCRYPT_DATABASE_URL: url } });
      expect((await run(["keys", "init"])).code).toBe(0);
      const census = await run(["status", "--keys", `@${join(dir, `${keys.a.id}.key`)}`, "--json"]);
      expect(JSON.parse(census.stdout).columns[0]).toMatchObject({ column: "notes.body", encrypted: { [ATELYAOS.keyId(keys.a)]: 9 }, plaintext: { toEncrypt: 3 } });
      const rotate = await run(["rotate", "--new-key", `@${join(dir, `${keys.b.id}.key`)}`, "--old-keys", `@${join(dir, `${keys.a.id}.key`)}`, "--yes"]);
      expect(rotate.code, rotate.stderr).toBe(0);
      for (const row of await db.query<{ id: number; team_id: string; body: string }>("SELECT id, team_id, body FROM notes")) {
        expect(row.body).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(openSecretbox(keys.b.bytes, row.team_id, row.body)).toBe(plaintexts.get(Number(row.id)));
      }
      const decrypt = await run(["decrypt", "--keys", `@${join(dir, `${keys.b.id}.key`)}`, "--yes"]);
      expect(decrypt.code, decrypt.stderr).toBe(0);
      for (const row of await db.query<{ id: number; body: string }>("SELECT id, body FROM notes")) expect(row.body).toBe(plaintexts.get(Number(row.id)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await db.close();
      await database.cleanup();
    }
  });
});
