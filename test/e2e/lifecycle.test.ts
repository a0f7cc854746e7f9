import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sealValue, openValue } from "../support/coder-crypto.js";
import { createCoderSchema, CODER_TABLES } from "../support/coder-schema.js";
import { dbArg, runCli } from "../support/cli.js";
import { assertAllValues, seedCoderData } from "../support/seed.js";
import { checksumDatabase, createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";
import { freshKey, keyRows, registerManifest } from "../support/fixtures.js";

describe.each(ENGINE_KINDS)("Coder lifecycle through the CLI on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;

  beforeEach(async () => {
    database = await createTestDatabase(kind, "life");
    db = await openTestDb(database.target);
    await createCoderSchema(db);
    url = dbArg(database.target);
  });

  afterEach(async () => {
    await db.close();
    await database.cleanup();
  });

  it("encrypts plaintext, rotates, decrypts, re-encrypts and deletes, as Coder's e2e test does", async () => {
    const manifest = await seedCoderData(db, { users: 6, key: null });
    registerManifest(manifest);
    const keyA = freshKey();
    const keyB = freshKey();
    const keyC = freshKey();

    const encrypt = await runCli(["rotate", "--db", url, "--new-key", keyA.base64, "--yes"]);
    expect(encrypt.code, encrypt.stderr).toBe(0);
    await assertAllValues(db, manifest, { keyId: keyA.id, key: keyA.bytes });
    expect((await keyRows(db)).map((row) => row.active_key_digest)).toEqual([keyA.id]);
    expect(openValue(keyA.bytes, (await keyRows(db))[0]!.test)).toBe("coder");

    const rotateToB = await runCli(["rotate", "--db", url, "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes"]);
    expect(rotateToB.code, rotateToB.stderr).toBe(0);
    await assertAllValues(db, manifest, { keyId: keyB.id, key: keyB.bytes });
    const afterRotate = await keyRows(db);
    expect(afterRotate).toMatchObject([
      { number: 1, active_key_digest: null, revoked_key_digest: keyA.id },
      { number: 2, active_key_digest: keyB.id, revoked_key_digest: null },
    ]);

    const again = await runCli(["rotate", "--db", url, "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: "nothing-to-do", rowsWritten: 0 });

    const decrypt = await runCli(["decrypt", "--db", url, "--keys", keyB.base64, "--yes"]);
    expect(decrypt.code, decrypt.stderr).toBe(0);
    await assertAllValues(db, manifest, { keyId: null });
    expect((await keyRows(db)).every((row) => row.active_key_digest === null)).toBe(true);

    const decryptAgain = await runCli(["decrypt", "--db", url, "--keys", keyB.base64, "--yes"]);
    expect(decryptAgain.code, decryptAgain.stderr).toBe(0);
    expect(decryptAgain.stdout).toContain("nothing to do");

    const encryptC = await runCli(["rotate", "--db", url, "--new-key", keyC.base64, "--yes"]);
    expect(encryptC.code, encryptC.stderr).toBe(0);
    await assertAllValues(db, manifest, { keyId: keyC.id, key: keyC.bytes });

    const wipe = await runCli(["delete", "--db", url, "--yes"]);
    expect(wipe.code, wipe.stderr).toBe(0);
    const keys = await keyRows(db);
    expect(keys).toHaveLength(3);
    expect(keys.every((row) => row.active_key_digest === null && row.revoked_key_digest !== null)).toBe(true);
    for (const table of ["user_links", "external_auth_links", "user_secrets", "mcp_server_user_tokens", "ai_provider_keys", "chat_mcp_servers"]) {
      const encrypted = await db.query(`SELECT count(*) AS n FROM ${table}`);
      const stillEncrypted = await db.query<{ n: number | string }>(
        `SELECT count(*) AS n FROM ${table} WHERE ${(await encryptedKeyIdColumns(db, table)).map((column) => `${column} IS NOT NULL`).join(" OR ")}`,
      );
      expect(Number(stillEncrypted[0]!.n), table).toBe(0);
      void encrypted;
    }
    const sshKeys = await db.query<{ private_key: string; private_key_key_id: string | null }>("SELECT private_key, private_key_key_id FROM gitsshkeys");
    expect(sshKeys.length).toBeGreaterThan(0);
    expect(sshKeys.every((row) => row.private_key === "" && row.private_key_key_id === null)).toBe(true);
    const cryptoKeys = await db.query<{ secret: string | null; secret_key_id: string | null }>("SELECT secret, secret_key_id FROM crypto_keys");
    expect(cryptoKeys.every((row) => row.secret_key_id === null)).toBe(true);

    const status = await runCli(["status", "--db", url, "--json"]);
    expect(status.code, status.stdout).toBe(0);
  });

  it("refuses to rotate while an active key was not supplied, and changes nothing", async () => {
    const keyA = freshKey();
    const keyB = freshKey();
    const manifest = await seedCoderData(db, { users: 3, key: keyA });
    registerManifest(manifest);
    const before = await checksumDatabase(db, ["dbcrypt_keys", ...CODER_TABLES]);
    const refused = await runCli(["rotate", "--db", url, "--new-key", keyB.base64, "--yes"]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(keyA.id);
    expect(refused.stderr.trim().split("\n")[0]).toMatch(/^dbcrypt: error: .*not supplied/);
    expect(await checksumDatabase(db, ["dbcrypt_keys", ...CODER_TABLES])).toBe(before);
  });

  it("refuses when the canary does not decrypt with the key given for that id", async () => {
    const keyA = freshKey();
    const manifest = await seedCoderData(db, { users: 2, key: keyA });
    registerManifest(manifest);
    const otherKey = freshKey();
    await db.query("UPDATE dbcrypt_keys SET test = $1 WHERE active_key_digest = $2", [sealValue(otherKey.bytes, "coder"), keyA.id]);
    const before = await checksumDatabase(db, ["dbcrypt_keys", ...CODER_TABLES]);
    const refused = await runCli(["decrypt", "--db", url, "--keys", keyA.base64, "--yes"]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain("canary");
    expect(await checksumDatabase(db, ["dbcrypt_keys", ...CODER_TABLES])).toBe(before);
  });

  it("blocks keys revoke while a value uses the key, naming the tables", async () => {
    const keyA = freshKey();
    registerManifest(await seedCoderData(db, { users: 2, key: keyA }));
    const blocked = await runCli(["keys", "revoke", keyA.id, "--db", url, "--yes"]);
    expect(blocked.code).toBe(3);
    expect(blocked.stderr).toContain("user_links.oauth_access_token");
    expect((await keyRows(db))[0]!.active_key_digest).toBe(keyA.id);
  });

  it("status gates a deploy: --require-key fails until everything is under that key", async () => {
    const keyA = freshKey();
    const keyB = freshKey();
    registerManifest(await seedCoderData(db, { users: 2, key: keyA }));
    const healthy = await runCli(["status", "--db", url, "--require-key", keyA.id]);
    expect(healthy.code, healthy.stdout).toBe(0);
    const wrongKey = await runCli(["status", "--db", url, "--require-key", keyB.id, "--json"]);
    expect(wrongKey.code).toBe(3);
    expect(JSON.parse(wrongKey.stdout).healthy).toBe(false);
    const verified = await runCli(["status", "--db", url, "--keys", keyA.base64, "--verify", "--json"]);
    expect(verified.code, verified.stdout).toBe(0);
    expect(JSON.parse(verified.stdout).verified.undecryptable).toEqual([]);
  });
});

async function encryptedKeyIdColumns(db: TestDb, table: string): Promise<string[]> {
  const { encryptedColumnsOf } = await import("../support/coder-schema.js");
  void db;
  return encryptedColumnsOf(table).map((column) => column.keyIdColumn);
}
