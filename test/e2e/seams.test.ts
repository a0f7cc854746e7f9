/**
 * The seams hold: a key source defined only in the test suite (test/support/plugins) is loaded
 * into the built CLI and the whole lifecycle runs on it, on both databases, with no change to
 * src/. See docs/architecture.md, "Adding a key source".
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCoderSchema } from "../support/coder-schema.js";
import { dbArg, runCli, testPlugin } from "../support/cli.js";
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
