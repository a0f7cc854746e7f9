import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyFromByte, keyIdOf, openValue, randomKey, sealValue, testKeyFrom } from "../support/coder-crypto.js";
import { CODER_ENCRYPTED_COLUMNS, CODER_TABLES, createCoderSchema } from "../support/coder-schema.js";
import { assertAllValues, readColumnStates, seedCoderData, type SeedManifest } from "../support/seed.js";
import {
  ENGINE_KINDS,
  checksumDatabase,
  createTestDatabase,
  openTestDb,
  type CreatedTestDatabase,
  type TestDb,
} from "../support/test-db.js";

describe("coder-crypto matches the reference test vectors (§1.4)", () => {
  const bytes0to31 = Buffer.from(Array.from({ length: 32 }, (_, i) => i));

  it.each([
    ["YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=", "864f702"],
    ["YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI=", "6c8d043"],
    ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "fdd7705"],
    ["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "6d28cf8"],
  ])("key %s has id %s", (base64, id) => {
    expect(keyIdOf(Buffer.from(base64, "base64"))).toBe(id);
  });

  it("builds the same keys from bytes", () => {
    expect(keyFromByte("a")).toMatchObject({ id: "864f702", base64: "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=" });
    expect(keyFromByte("\0").id).toBe("fdd7705");
    expect(testKeyFrom(bytes0to31).id).toBe("6d28cf8");
  });

  it("opens Coder's backwards-compatibility ciphertext", () => {
    expect(openValue(keyFromByte("a").bytes, "YhAz+lE2fFeeiVPH9voKN7UV1xSDrgcnC0LmNXmaAk1Yg0kPFO3x")).toBe("hello world");
  });

  it.each([
    [keyFromByte("a").bytes, Buffer.alloc(12), "coder", "AAAAAAAAAAAAAAAA9nvU1Jrt8JwcVHQEECSdbUXHKw9+"],
    [keyFromByte("a").bytes, Buffer.alloc(12), "", "AAAAAAAAAAAAAAAAKoEqQvgkmt01fNWi7ElOUA=="],
    [bytes0to31, Buffer.from("000102030405060708090a0b", "hex"), "coder", "AAECAwQFBgcICQoLJG2yfrdlYkjT5hqzXa/2/z2FZpXl"],
  ])("seals deterministically with a fixed nonce (#%#)", (key, nonce, plaintext, stored) => {
    expect(sealValue(key, plaintext, nonce)).toBe(stored);
    expect(openValue(key, stored)).toBe(plaintext);
  });

  it("rejects a wrong key, a short blob and non-base64 without echoing the value", () => {
    const stored = sealValue(keyFromByte("a").bytes, "top secret");
    expect(() => openValue(keyFromByte("b").bytes, stored)).toThrow("message authentication failed");
    expect(() => openValue(keyFromByte("a").bytes, "AAAA")).toThrow("ciphertext too short");
    expect(() => openValue(keyFromByte("a").bytes, `${stored}!`)).toThrow(/^malformed encrypted field: not standard base64$/);
  });

  it("uses a fresh nonce for every seal", () => {
    const key = randomKey();
    expect(sealValue(key.bytes, "same")).not.toBe(sealValue(key.bytes, "same"));
  });
});

describe.each(ENGINE_KINDS)("test harness on %s", (kind) => {
  const key = randomKey();
  let database: CreatedTestDatabase;
  let db: TestDb;
  let manifest: SeedManifest;

  beforeAll(async () => {
    database = await createTestDatabase(kind, "harness");
    db = await openTestDb(database.target);
    await createCoderSchema(db);
    manifest = await seedCoderData(db, { users: 7, key });
  });

  afterAll(async () => {
    await db?.close();
    await database?.cleanup();
  });

  it("declares a foreign key to dbcrypt_keys for every encrypted column", async () => {
    const expected = CODER_ENCRYPTED_COLUMNS.map((c) => `${c.table}.${c.keyIdColumn}`).sort();
    const found = (await keysTableForeignKeys(db)).map((fk) => `${fk.table}.${fk.column}`).sort();
    expect(found).toEqual(expected);
    if (kind === "postgres") {
      const names = (await keysTableForeignKeys(db)).map((fk) => fk.name).sort();
      expect(names).toEqual(CODER_ENCRYPTED_COLUMNS.map((c) => c.fkName).sort());
      expect(names).toContain("git_auth_links_oauth_access_token_key_id_fkey");
    }
  });

  it("translates placeholders and binds booleans and dates", async () => {
    const [literal] = await db.query<{ a: string; c: string }>("SELECT $1 AS a, '$1' AS c", ["x"]);
    expect(literal).toEqual({ a: "x", c: "$1" });
    const [systemUsers] = await db.query<{ n: number | string }>(
      "SELECT COUNT(*) AS n FROM users WHERE is_system = $1 AND deleted = $2",
      [true, false],
    );
    expect(Number(systemUsers?.n)).toBe(1);
    const [started] = await db.query<{ n: number | string }>("SELECT COUNT(*) AS n FROM crypto_keys WHERE starts_at < $1", [
      new Date(Date.now() + 60_000),
    ]);
    expect(Number(started?.n)).toBe(manifest.rowCounts.crypto_keys);
  });

  it("inserts the seed key's active row with a canary that decrypts to 'coder'", async () => {
    const rows = await db.query<{ number: number; active_key_digest: string; test: string }>(
      "SELECT number, active_key_digest, test FROM dbcrypt_keys",
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ number: 1, active_key_digest: key.id });
    expect(openValue(key.bytes, rows[0]?.test ?? "")).toBe("coder");
  });

  it("seeds the counted rows into every table", async () => {
    for (const [table, count] of Object.entries(manifest.rowCounts)) {
      const [row] = await db.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM ${table}`);
      expect(Number(row?.n), table).toBe(count);
    }
    const seededTables = new Set(CODER_ENCRYPTED_COLUMNS.map((column) => column.table));
    expect(Object.keys(manifest.rowCounts)).toEqual(expect.arrayContaining([...seededTables, "users"]));
    expect(manifest.users.filter((user) => user.isSystem)).toHaveLength(1);
    expect(manifest.users.some((user) => user.deleted)).toBe(true);
  });

  it("encrypts values the way Coder does", async () => {
    await assertAllValues(db, manifest, { keyId: key.id, key: key.bytes });

    const [link] = await readColumnStates(db, "user_links", "oauth_access_token", "oauth_access_token_key_id", [
      "user_id",
      "login_type",
    ]);
    expect(link?.keyId).toBe(key.id);
    const entry = manifest.entries.find(
      (e) => e.table === "user_links" && e.column === "oauth_access_token" && e.pk.user_id === link?.pk.user_id,
    );
    expect(openValue(key.bytes, link?.value ?? "")).toBe(entry?.plaintext);
  });

  it("leaves blank MCP and AI values as plaintext and encrypts empty user_links tokens", async () => {
    const aiKeys = await readColumnStates(db, "ai_provider_keys", "api_key", "api_key_key_id", ["id"]);
    expect(aiKeys.filter((state) => state.keyId === null)).toEqual([expect.objectContaining({ value: "" })]);
    const headers = await readColumnStates(db, "chat_mcp_servers", "headers", "headers_key_id", ["id"]);
    expect(headers.filter((state) => state.keyId === null).map((state) => state.value)).toEqual(["{}"]);
    const emptyLinks = manifest.entries.filter((e) => e.table === "user_links" && e.plaintext === "");
    expect(emptyLinks.length).toBeGreaterThan(0);
    const secrets = await readColumnStates(db, "workspace_secrets", "value", "value_key_id", ["id"]);
    expect(secrets.filter((state) => state.value === null)).toEqual([expect.objectContaining({ keyId: null })]);
  });

  it("reports a tampered value by table, column and key, never by value", async () => {
    const checksum = await checksumDatabase(db, CODER_TABLES);
    const victim = manifest.entries.find((e) => e.table === "gitsshkeys");
    if (!victim) throw new Error("no gitsshkeys entry seeded");
    const otherKey = randomKey();
    await db.exec("BEGIN");
    try {
      await db.query("UPDATE gitsshkeys SET private_key = $1 WHERE user_id = $2", [
        sealValue(otherKey.bytes, victim.plaintext ?? ""),
        victim.pk.user_id,
      ]);
      expect(await checksumDatabase(db, CODER_TABLES)).not.toBe(checksum);
      const failure = await assertAllValues(db, manifest, { keyId: key.id, key: key.bytes }).catch((e: Error) => e);
      expect(failure).toBeInstanceOf(Error);
      const message = (failure as Error).message;
      expect(message).toContain(`gitsshkeys.private_key {"user_id":"${victim.pk.user_id}"}`);
      expect(message).toContain("does not decrypt");
      expect(message).not.toContain("PRIVATE KEY");
    } finally {
      await db.exec("ROLLBACK");
    }
    expect(await checksumDatabase(db, CODER_TABLES)).toBe(checksum);
  });

  it("rejects a key id that is not in dbcrypt_keys (the revocation safety net)", async () => {
    await expect(
      db.query("UPDATE ai_provider_keys SET api_key_key_id = $1 WHERE api_key_key_id IS NOT NULL", ["0000000"]),
    ).rejects.toThrow(/foreign key/i);
  });

  it("seeds plaintext when no key is given", async () => {
    const plain = await seedCoderData(db, { users: 2, key: null, includeSystemUser: false });
    await assertAllValues(db, plain, { keyId: null });
    expect(plain.entries.some((e) => e.table === "crypto_keys" && e.plaintext === null)).toBe(true);
  });
});

async function keysTableForeignKeys(db: TestDb): Promise<{ table: string; column: string; name: string }[]> {
  if (db.kind === "postgres") {
    return db.query(
      `SELECT c.conrelid::regclass::text AS table, a.attname AS column, c.conname AS name
       FROM pg_constraint c
       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
       WHERE c.contype = 'f' AND c.confrelid = 'dbcrypt_keys'::regclass`,
    );
  }
  return db.query(
    `SELECT m.name AS "table", fk."from" AS "column", '' AS name
     FROM sqlite_master m, pragma_foreign_key_list(m.name) fk
     WHERE m.type = 'table' AND fk."table" = 'dbcrypt_keys' AND fk."to" = 'active_key_digest'`,
  );
}
