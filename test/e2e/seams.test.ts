/**
 * The seams hold: a key source and a value scheme defined only in the test suite
 * (test/support/plugins) are loaded into the built CLI and the whole lifecycle runs on them, on
 * both databases, with no change to src/. See docs/architecture.md, "Seams".
 */
import { createDecipheriv, createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCoderSchema } from "../support/coder-schema.js";
import { dbArg, registerSecret, runCli, testPlugin } from "../support/cli.js";
import type { TestKey } from "../support/coder-crypto.js";
import { freshKey, keyRows, registerManifest } from "../support/fixtures.js";
import { assertAllValues, seedCoderData, type SeedManifest } from "../support/seed.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";

describe.each(ENGINE_KINDS)("a key source registered from outside src/ on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;
  let vaultDir: string;
  let manifest: SeedManifest;
  const keyA = freshKey();
  const keyB = freshKey();

  beforeEach(async () => {
    database = await createTestDatabase(kind, "seam_src");
    db = await openTestDb(database.target);
    await createCoderSchema(db);
    url = dbArg(database.target);
    manifest = await seedCoderData(db, { users: 8, key: keyA });
    registerManifest(manifest);
    vaultDir = mkdtempSync(join(tmpdir(), "dbcrypt-toy-vault-"));
    writeFileSync(join(vaultDir, "vault.json"), JSON.stringify({ a: keyA.base64, b: keyB.base64 }), { mode: 0o600 });
  });

  afterEach(async () => {
    rmSync(vaultDir, { recursive: true, force: true });
    await db.close();
    await database.cleanup();
  });

  const withToyVault = () => ({ nodeArgs: ["--import", testPlugin("toy-key-source.mjs")], env: { TOY_VAULT_FILE: join(vaultDir, "vault.json") } });

  it("rotates, verifies, stops and resumes, and decrypts with keys named toy-vault:NAME", async () => {
    const rotate = await runCli(["rotate", "--db", url, "--new-key", "toy-vault:b", "--old-keys", "toy-vault:a", "--yes"], withToyVault());
    expect(rotate.code, rotate.stderr).toBe(0);
    await assertAllValues(db, manifest, { keyId: keyB.id, key: keyB.bytes });
    expect((await keyRows(db)).map((row) => [row.active_key_digest, row.revoked_key_digest])).toEqual([[null, keyA.id], [keyB.id, null]]);

    const verify = await runCli(["status", "--db", url, "--keys", "toy-vault:b", "--verify", "--require-key", keyB.id], withToyVault());
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);

    // The continue command repeats the reference as the source describes it, not as <key>.
    const stopped = await runCli(["decrypt", "--db", url, "--keys", "toy-vault:b", "--yes", "--max-duration", "1ms", "--json"], withToyVault());
    expect(stopped.code, stopped.stderr).toBe(4);
    expect(JSON.parse(stopped.stdout).continueWith).toMatch(/ --keys toy-vault:b /);

    const decrypt = await runCli(["decrypt", "--db", url, "--keys", "toy-vault:b", "--yes"], withToyVault());
    expect(decrypt.code, decrypt.stderr).toBe(0);
    await assertAllValues(db, manifest, { keyId: null });
  });

  it("without the plugin the same reference is a malformed literal key: exit 2, nothing written", async () => {
    const run = await runCli(["rotate", "--db", url, "--new-key", "toy-vault:b", "--old-keys", "toy-vault:a", "--yes"], { env: withToyVault().env });
    expect(run.code).toBe(2);
    expect(run.stderr.split("\n")[0]).toMatch(/^dbcrypt: error: --new-key /);
    await assertAllValues(db, manifest, { keyId: keyA.id, key: keyA.bytes });
  });
});

/** The toy format, decoded here independently of the plugin that writes it. */
function openToyCell(key: TestKey, cell: string): { keyId: string; plaintext: string } {
  const match = /^toy:v1:([0-9a-f]{7}):(.*)$/s.exec(cell);
  if (match === null) throw new Error("not a toy cell");
  const blob = Buffer.from(match[2] as string, "base64");
  const decipher = createDecipheriv("aes-256-gcm", key.bytes, blob.subarray(0, 12));
  decipher.setAuthTag(blob.subarray(blob.length - 16));
  return { keyId: match[1] as string, plaintext: Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]).toString("utf8") };
}

function toyKeyId(key: TestKey): string {
  return createHash("sha256").update("toy").update(key.bytes).digest("hex").slice(0, 7);
}

/**
 * A value scheme defined only in the test suite (AES-256-GCM with the key id in the value's
 * prefix, no key-id column) runs the whole lifecycle on both databases: the census, refusals,
 * rotate, status --verify, decrypt, encrypt again and delete all go through ops/ and db/ as they
 * are, asking the scheme. See docs/architecture.md, "Adding a scheme".
 */
describe.each(ENGINE_KINDS)("a value scheme registered from outside src/ on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;
  let dir: string;
  const plaintexts = new Map<number, string | null>();
  const keys = { a: freshKey(), b: freshKey(), c: freshKey() };

  beforeEach(async () => {
    database = await createTestDatabase(kind, "seam_scheme");
    db = await openTestDb(database.target);
    url = dbArg(database.target);
    dir = mkdtempSync(join(tmpdir(), "dbcrypt-toy-scheme-"));
    for (const [name, key] of Object.entries(keys)) writeFileSync(join(dir, `${name}.key`), `${key.base64}\n`, { mode: 0o600 });
    writeFileSync(join(dir, "dbcrypt.config.json"), JSON.stringify({ scheme: "toy-prefix", preset: "none", tables: { notes: { deletePolicy: "delete-row", columns: { secret: {} } } } }));
    const init = await runCli(["keys", "init", "--db", url], toy());
    expect(init.code, init.stderr).toBe(0);
    await db.exec("CREATE TABLE notes (id integer PRIMARY KEY, owner text NOT NULL, secret text)");
    plaintexts.clear();
    for (let id = 1; id <= 30; id++) {
      const secret = id % 10 === 0 ? null : id % 10 === 5 ? "" : `toy secret ${id} ✓`;
      plaintexts.set(id, secret);
      if (secret !== null && secret.length >= 6) registerSecret(secret);
      await db.query("INSERT INTO notes (id, owner, secret) VALUES ($1, $2, $3)", [id, `owner ${id % 3}`, secret]);
    }
  });

  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await db.close();
    await database.cleanup();
  });

  // The config file is found in the working directory; the database comes from the environment.
  const toy = () => ({ nodeArgs: ["--import", testPlugin("toy-prefix-scheme.mjs")], cwd: dir, env: { DBCRYPT_DATABASE_URL: url } });
  const key = (name: keyof typeof keys) => `@${join(dir, `${name}.key`)}`;

  async function expectAllUnder(name: keyof typeof keys | null): Promise<void> {
    const rows = await db.query<{ id: number; owner: string; secret: string | null }>("SELECT id, owner, secret FROM notes ORDER BY id");
    expect(rows).toHaveLength(30);
    for (const row of rows) {
      const original = plaintexts.get(Number(row.id)) ?? null;
      expect(row.owner).toBe(`owner ${Number(row.id) % 3}`);
      if (original === null || name === null) {
        expect(row.secret).toBe(original);
        continue;
      }
      expect(openToyCell(keys[name], row.secret as string)).toEqual({ keyId: toyKeyId(keys[name]), plaintext: original });
    }
  }

  it("encrypts, rotates, verifies, refuses an unknown key, decrypts, re-encrypts and deletes", async () => {
    const encrypt = await runCli(["rotate", "--new-key", key("a"), "--yes", "--json"], toy());
    expect(encrypt.code, encrypt.stderr).toBe(0);
    expect(JSON.parse(encrypt.stdout)).toMatchObject({ status: "done", valuesWritten: 27, keysInserted: [toyKeyId(keys.a)] });
    await expectAllUnder("a");

    const census = await runCli(["status", "--keys", key("a"), "--verify", "--require-key", toyKeyId(keys.a), "--json"], toy());
    expect(census.code, census.stdout).toBe(0);
    expect(JSON.parse(census.stdout).columns).toEqual([
      expect.objectContaining({ column: "notes.secret", keyIdColumn: null, encrypted: { [toyKeyId(keys.a)]: 27 }, plaintext: expect.objectContaining({ nulls: 3, toEncrypt: 0 }) }),
    ]);

    const rotate = await runCli(["rotate", "--new-key", key("b"), "--old-keys", key("a"), "--yes", "--batch-size", "7"], toy());
    expect(rotate.code, rotate.stderr).toBe(0);
    await expectAllUnder("b");

    // Data under b, and b not given: refused before any write.
    const refused = await runCli(["rotate", "--new-key", key("c"), "--yes", "--json"], toy());
    expect(refused.code).toBe(3);
    expect(JSON.parse(refused.stdout).error).toMatchObject({ code: "unknown_key", subject: { keyIds: [toyKeyId(keys.b)] } });
    await expectAllUnder("b");

    const decrypt = await runCli(["decrypt", "--keys", key("b"), "--yes"], toy());
    expect(decrypt.code, decrypt.stderr).toBe(0);
    await expectAllUnder(null);

    const again = await runCli(["rotate", "--new-key", key("c"), "--yes"], toy());
    expect(again.code, again.stderr).toBe(0);
    await expectAllUnder("c");

    const wiped = await runCli(["delete", "--yes", "--json"], toy());
    expect(wiped.code, wiped.stderr).toBe(0);
    const left = await db.query<{ id: number }>("SELECT id FROM notes ORDER BY id");
    expect(left.map((row) => Number(row.id))).toEqual([10, 20, 30]);
    const activeKeys = await db.query<{ n: number | string }>("SELECT count(*) AS n FROM dbcrypt_keys WHERE active_key_digest IS NOT NULL");
    expect(Number(activeKeys[0]?.n)).toBe(0);
  });
});
