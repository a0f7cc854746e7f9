/**
 * Tricky data through the built CLI on both engines: corrupt ciphertext, hostile identifiers,
 * composite and wide primary keys, multi-megabyte and non-ASCII values, and runs that are stopped
 * or killed part-way. The property under test is always the same: no value is ever lost or
 * half-written, problems are reported by primary key (never by value), and re-running finishes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openValue, sealValue, type TestKey } from "../support/coder-crypto.js";
import { CODER_ENCRYPTED_COLUMNS, createCoderSchema, primaryKeyOf } from "../support/coder-schema.js";
import { CLI_PATH, dbArg, findLeaks, registerSecret, runCli, type CliRun } from "../support/cli.js";
import { assertAllValues, readColumnStates, seedCoderData, type SeedManifest } from "../support/seed.js";
import { checksumDatabase, createTestDatabase, ENGINE_KINDS, openTestDb, quoteIdent, type CreatedTestDatabase, type EngineKind, type TestDb } from "../support/test-db.js";
import { freshKey, keyRows, registerManifest } from "../support/fixtures.js";

/** Runs the CLI and parses its --json summary; the exit code is checked by the caller. */
async function runJson(args: string[]): Promise<{ run: CliRun; summary: Record<string, any> }> {
  const run = await runCli([...args, "--json"]);
  let summary: Record<string, any>;
  try {
    summary = JSON.parse(run.stdout) as Record<string, any>;
  } catch {
    throw new Error(`dbcrypt ${args[0]} printed no JSON (exit ${run.code}):\n${run.stderr}`);
  }
  return { run, summary };
}

/** Seals raw bytes (not necessarily UTF-8) in Coder's format, independently of the product. */
function sealBytes(key: Buffer, plaintext: Buffer): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  return Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]).toString("base64");
}

function openBytes(key: Buffer, stored: string): Buffer {
  const blob = Buffer.from(stored, "base64");
  const decipher = createDecipheriv("aes-256-gcm", key, blob.subarray(0, 12));
  decipher.setAuthTag(blob.subarray(blob.length - 16));
  return Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]);
}

interface Fresh { database: CreatedTestDatabase; db: TestDb; url: string }

/** A new, empty database for every test of the enclosing describe, dropped after it. */
function freshDatabase(kind: EngineKind, label: string): Fresh {
  const fresh = {} as Fresh;
  beforeEach(async () => {
    fresh.database = await createTestDatabase(kind, label);
    fresh.db = await openTestDb(fresh.database.target);
    fresh.url = dbArg(fresh.database.target);
  });
  afterEach(async () => {
    await fresh.db?.close();
    await fresh.database?.cleanup();
  });
  return fresh;
}

describe.each(ENGINE_KINDS)("corrupt ciphertext on %s", (kind) => {
  const fresh = freshDatabase(kind, "corrupt");

  beforeEach(async () => {
    await createCoderSchema(fresh.db);
  });

  interface Victim { table: string; column: string; pk: Record<string, string>; corrupt: (stored: string) => string | null }

  /** The first row (by primary key) of a table whose column is under the given key. */
  async function firstRowUnder(table: string, column: string, keyId: string, skip = 0): Promise<Record<string, string>> {
    const pkColumns = primaryKeyOf(table);
    const rows = await fresh.db.query(
      `SELECT ${pkColumns.map(quoteIdent).join(", ")} FROM ${table} WHERE ${column}_key_id = $1 AND ${column} IS NOT NULL ORDER BY ${pkColumns.map(quoteIdent).join(", ")}`,
      [keyId],
    );
    const row = rows[skip];
    if (!row) throw new Error(`no ${table}.${column} row under ${keyId}`);
    return Object.fromEntries(pkColumns.map((name) => [name, String(row[name])]));
  }

  function pkWhere(pk: Record<string, string>, offset = 0): { sql: string; params: string[] } {
    const names = Object.keys(pk);
    return { sql: names.map((name, index) => `${quoteIdent(name)} = $${index + 1 + offset}`).join(" AND "), params: names.map((name) => pk[name]!) };
  }

  async function wholeRow(table: string, pk: Record<string, string>): Promise<string> {
    const where = pkWhere(pk);
    const rows = await fresh.db.query(`SELECT * FROM ${table} WHERE ${where.sql}`, where.params);
    expect(rows, `${table} ${JSON.stringify(pk)}`).toHaveLength(1);
    return JSON.stringify(Object.entries(rows[0]!).sort(([a], [b]) => a.localeCompare(b)).map(([name, value]) => [name, value instanceof Date ? value.toISOString() : value]));
  }

  it("leaves corrupt values untouched, reports them by primary key, carries on, and keeps the key they use", async () => {
    const keyA = freshKey();
    const keyB = freshKey();
    const manifest = await seedCoderData(fresh.db, { users: 3, key: keyA });
    registerManifest(manifest);

    const flipBit = (stored: string) => {
      const blob = Buffer.from(stored, "base64");
      blob[Math.floor(blob.length / 2)]! ^= 0x04;
      return blob.toString("base64");
    };
    const victims: Victim[] = [
      { table: "user_secrets", column: "value", pk: await firstRowUnder("user_secrets", "value", keyA.id), corrupt: (s) => Buffer.from(s, "base64").subarray(0, -4).toString("base64") },
      { table: "user_secrets", column: "value", pk: await firstRowUnder("user_secrets", "value", keyA.id, 1), corrupt: (s) => s.slice(0, -3) },
      { table: "gitsshkeys", column: "private_key", pk: await firstRowUnder("gitsshkeys", "private_key", keyA.id), corrupt: flipBit },
      { table: "external_auth_links", column: "oauth_access_token", pk: await firstRowUnder("external_auth_links", "oauth_access_token", keyA.id), corrupt: () => "%%% not*base64 %%%" },
      { table: "crypto_keys", column: "secret", pk: await firstRowUnder("crypto_keys", "secret", keyA.id), corrupt: () => Buffer.alloc(8, 7).toString("base64") },
      { table: "user_links", column: "oauth_refresh_token", pk: await firstRowUnder("user_links", "oauth_refresh_token", keyA.id), corrupt: () => "" },
      { table: "workspace_secrets", column: "value", pk: await firstRowUnder("workspace_secrets", "value", keyA.id), corrupt: () => null },
    ];
    const rowsBefore = new Map<Victim, string>();
    for (const victim of victims) {
      const select = pkWhere(victim.pk);
      const [row] = await fresh.db.query<{ v: string }>(`SELECT ${victim.column} AS v FROM ${victim.table} WHERE ${select.sql}`, select.params);
      const corrupt = victim.corrupt(row!.v);
      if (corrupt !== null) registerSecret(corrupt);
      const update = pkWhere(victim.pk, 1);
      await fresh.db.query(`UPDATE ${victim.table} SET ${victim.column} = CAST($1 AS TEXT) WHERE ${update.sql}`, [corrupt, ...update.params]);
      rowsBefore.set(victim, await wholeRow(victim.table, victim.pk));
    }
    const isVictimRow = (table: string, pk: Record<string, string>) => victims.some((victim) => victim.table === table && JSON.stringify(victim.pk) === JSON.stringify(pk));
    const healthy: SeedManifest = { ...manifest, entries: manifest.entries.filter((entry) => !isVictimRow(entry.table, entry.pk)) };
    const expectedReports = victims.map((victim) => `${victim.table}.${victim.column} ${JSON.stringify(victim.pk)}`).sort();

    const { run: rotate, summary } = await runJson(["rotate", "--db", fresh.url, "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes", "--batch-size", "2"]);
    expect(rotate.code, rotate.stderr).toBe(3);
    expect(summary.status).toBe("failed-rows");
    const reported = (summary.undecryptable as { table: string; rowKey: Record<string, string>; failure: { column: string; keyId: string } }[])
      .map((failure) => `${failure.table}.${failure.failure.column} ${JSON.stringify(failure.rowKey)}`).sort();
    expect(reported).toEqual(expectedReports);
    expect((summary.undecryptable as { failure: { keyId: string } }[]).every((failure) => failure.failure.keyId === keyA.id)).toBe(true);
    expect(summary.keysKept).toEqual([{ keyId: keyA.id, reason: expect.stringMatching(/still use it/) }]);
    expect(summary.keysRevoked).toEqual([]);
    for (const victim of victims) expect(await wholeRow(victim.table, victim.pk), `${victim.table} row changed`).toBe(rowsBefore.get(victim));
    await assertAllValues(fresh.db, healthy, { keyId: keyB.id, key: keyB.bytes });
    expect((await keyRows(fresh.db)).map((row) => row.active_key_digest)).toEqual([keyA.id, keyB.id]);

    // Re-running hits the same rows again, says so in plain text, and still changes nothing else.
    const again = await runCli(["rotate", "--db", fresh.url, "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes"]);
    expect(again.code).toBe(3);
    for (const victim of victims) expect(again.stdout).toContain(`undecryptable: ${victim.table}.${victim.column} row ${JSON.stringify(victim.pk)}`);

    const { run: verify, summary: report } = await runJson(["status", "--db", fresh.url, "--keys", `${keyB.base64},${keyA.base64}`, "--verify"]);
    expect(verify.code).toBe(3);
    expect((report.verified.undecryptable as { column: string; rowKey: Record<string, string> }[]).map((failure) => `${failure.column} ${JSON.stringify(failure.rowKey)}`).sort()).toEqual(expectedReports);
    let encryptedValues = 0;
    for (const column of CODER_ENCRYPTED_COLUMNS) {
      const [row] = await fresh.db.query<{ n: string | number }>(`SELECT count(*) AS n FROM ${column.table} WHERE ${column.keyIdColumn} IS NOT NULL`);
      encryptedValues += Number(row?.n ?? 0);
    }
    expect(report.verified.values).toBe(encryptedValues);

    const { run: decrypt, summary: decrypted } = await runJson(["decrypt", "--db", fresh.url, "--keys", `${keyB.base64},${keyA.base64}`, "--yes"]);
    expect(decrypt.code).toBe(3);
    expect(decrypted.keysRevoked).toEqual([keyB.id]);
    expect(decrypted.keysKept.map((kept: { keyId: string }) => kept.keyId)).toEqual([keyA.id]);
    for (const victim of victims) expect(await wholeRow(victim.table, victim.pk)).toBe(rowsBefore.get(victim));
    await assertAllValues(fresh.db, healthy, { keyId: null });

    // The way out for values nobody can decrypt: delete them, then every key can be revoked.
    const wipe = await runCli(["delete", "--db", fresh.url, "--yes"]);
    expect(wipe.code, wipe.stderr).toBe(0);
    expect((await keyRows(fresh.db)).every((row) => row.active_key_digest === null)).toBe(true);
  });
});

/** Quotes, a semicolon, spaces, non-ASCII and upper case in every name dbcrypt has to write. */
const HOSTILE = {
  keysTable: 'Keys "Tbl"; --ü',
  table: 'Sécret "Stash"; DROP TABLE x; --',
  pk: 'Id "K"; ey',
  notNullColumn: 'Tökén "A"; b',
  nullableColumn: "UPPER Case",
  other: 'note; "x"',
} as const;

describe.each(ENGINE_KINDS)("hostile identifiers on %s", (kind) => {
  const fresh = freshDatabase(kind, "hostile");

  it("rotates, decrypts and deletes a non-Coder schema whose names need quoting", async () => {
    const keysFlag = ["--keys-table", HOSTILE.keysTable];
    const init = await runCli(["keys", "init", "--db", fresh.url, ...keysFlag]);
    expect(init.code, init.stderr).toBe(0);
    const q = quoteIdent;
    const fk = (column: string) => `${q(`${column}_key_id`)} text REFERENCES ${q(HOSTILE.keysTable)} (active_key_digest)`;
    await fresh.db.exec(
      `CREATE TABLE ${q(HOSTILE.table)} (${q(HOSTILE.pk)} text NOT NULL PRIMARY KEY, ${q(HOSTILE.notNullColumn)} text NOT NULL, ${fk(HOSTILE.notNullColumn)}, ` +
        `${q(HOSTILE.nullableColumn)} text, ${fk(HOSTILE.nullableColumn)}, ${q(HOSTILE.other)} text)`,
    );
    const rows = [
      { pk: "a'; --", first: "first ä secret", second: "second secret" },
      { pk: 'b "quoted"', first: "another secret", second: null },
      { pk: "Ω", first: "", second: "   " },
      { pk: "z", first: "last secret value", second: "🔑 key" },
      { pk: "", first: "empty-pk secret", second: null },
    ];
    for (const row of rows) {
      for (const value of [row.first, row.second]) if (value) registerSecret(value);
      await fresh.db.query(`INSERT INTO ${q(HOSTILE.table)} (${q(HOSTILE.pk)}, ${q(HOSTILE.notNullColumn)}, ${q(HOSTILE.nullableColumn)}, ${q(HOSTILE.other)}) VALUES ($1, $2, $3, $4)`, [row.pk, row.first, row.second, `other ${row.pk}`]);
    }
    const read = () => fresh.db.query<Record<string, string | null>>(
      `SELECT ${q(HOSTILE.pk)} AS pk, ${q(HOSTILE.notNullColumn)} AS first, ${q(`${HOSTILE.notNullColumn}_key_id`)} AS first_key, ` +
        `${q(HOSTILE.nullableColumn)} AS second, ${q(`${HOSTILE.nullableColumn}_key_id`)} AS second_key, ${q(HOSTILE.other)} AS other FROM ${q(HOSTILE.table)} ORDER BY 1`,
    );
    const byPk = new Map(rows.map((row) => [row.pk, row]));
    const expectUnder = async (key: TestKey | null) => {
      const stored = await read();
      expect(stored).toHaveLength(rows.length);
      for (const row of stored) {
        const original = byPk.get(row.pk!)!;
        expect(row.other).toBe(`other ${row.pk}`);
        expect(row.first_key).toBe(key?.id ?? null);
        expect(key ? openValue(key.bytes, row.first!) : row.first).toBe(original.first);
        expect(row.second_key).toBe(original.second === null ? null : key?.id ?? null);
        expect(key && original.second !== null ? openValue(key.bytes, row.second!) : row.second).toBe(original.second);
      }
    };

    const status = await runJson(["status", "--db", fresh.url, ...keysFlag]);
    expect(status.run.code, status.run.stdout).toBe(0);
    expect(status.summary.columns.map((column: { column: string; source: string }) => [column.column, column.source]).sort()).toEqual([
      [`${HOSTILE.table}.${HOSTILE.nullableColumn}`, "foreign-key"],
      [`${HOSTILE.table}.${HOSTILE.notNullColumn}`, "foreign-key"],
    ].sort());

    const keyA = freshKey();
    const keyB = freshKey();
    const keyC = freshKey();
    const encrypt = await runCli(["rotate", "--db", fresh.url, ...keysFlag, "--new-key", keyA.base64, "--yes", "--batch-size", "2"]);
    expect(encrypt.code, encrypt.stderr).toBe(0);
    await expectUnder(keyA);
    const rotate = await runCli(["rotate", "--db", fresh.url, ...keysFlag, "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes", "--batch-size", "2"]);
    expect(rotate.code, rotate.stderr).toBe(0);
    await expectUnder(keyB);
    expect((await keyRows(fresh.db, HOSTILE.keysTable)).map((row) => [row.active_key_digest, row.revoked_key_digest])).toEqual([[null, keyA.id], [keyB.id, null]]);
    const decrypt = await runCli(["decrypt", "--db", fresh.url, ...keysFlag, "--keys", keyB.base64, "--yes", "--batch-size", "2"]);
    expect(decrypt.code, decrypt.stderr).toBe(0);
    await expectUnder(null);
    const listing = await runJson(["keys", "list", "--db", fresh.url, ...keysFlag]);
    expect(listing.summary.keysTable).toBe(HOSTILE.keysTable);
    expect(listing.summary.keys.map((key: { state: string }) => key.state)).toEqual(["revoked", "revoked"]);

    const reencrypt = await runCli(["rotate", "--db", fresh.url, ...keysFlag, "--new-key", keyC.base64, "--yes"]);
    expect(reencrypt.code, reencrypt.stderr).toBe(0);
    await expectUnder(keyC);
    const wipe = await runCli(["delete", "--db", fresh.url, ...keysFlag, "--yes", "--batch-size", "2"]);
    expect(wipe.code, wipe.stderr).toBe(0);
    const wiped = await read();
    expect(wiped.map((row) => [row.first, row.first_key, row.second, row.second_key, row.other])).toEqual(
      rows.map((row) => row.pk).sort().map((pk) => ["", null, null, null, `other ${pk}`]),
    );
    expect((await keyRows(fresh.db, HOSTILE.keysTable)).every((row) => row.active_key_digest === null)).toBe(true);
  });
});

describe.each(ENGINE_KINDS)("composite and wide primary keys on %s", (kind) => {
  const fresh = freshDatabase(kind, "pkeys");

  beforeEach(async () => {
    const init = await runCli(["keys", "init", "--db", fresh.url]);
    expect(init.code, init.stderr).toBe(0);
  });

  const secretColumns = "secret text, secret_key_id text REFERENCES dbcrypt_keys (active_key_digest)";
  const BIG_KEYS = ["-9223372036854775808", "-9007199254740993", "9007199254740992", "9007199254740993", "9007199254740994", "9223372036854775807"];

  /** Every table: a SELECT of its key as text, and the rows it was filled with. */
  async function createTables(): Promise<{ table: string; keyText: string; keys: string[] }[]> {
    const tenants = [randomUUID(), randomUUID()];
    const labels = ["a", "B", "ä", "a b", "", "O'Brien", "a\u0301"];
    const tables: { table: string; keyText: string; keys: string[] }[] = [];
    await fresh.db.exec(`CREATE TABLE mixed (tenant ${kind === "postgres" ? "uuid" : "TEXT"} NOT NULL, label text NOT NULL, ${secretColumns}, PRIMARY KEY (tenant, label))`);
    const mixedKeys: string[] = [];
    for (const tenant of tenants) {
      for (const label of labels) {
        await fresh.db.query("INSERT INTO mixed (tenant, label, secret) VALUES ($1, $2, $3)", [tenant, label, `mixed ${tenant} ${label}`]);
        mixedKeys.push(`${tenant}|${label}`);
      }
    }
    tables.push({ table: "mixed", keyText: `CAST(tenant AS TEXT) || '|' || label`, keys: mixedKeys });

    await fresh.db.exec(`CREATE TABLE wide (id ${kind === "postgres" ? "bigint" : "INTEGER"} NOT NULL PRIMARY KEY, ${secretColumns})`);
    // Literals, not parameters: neighbours above 2^53 that a JavaScript number cannot tell apart.
    for (const id of BIG_KEYS) await fresh.db.exec(`INSERT INTO wide (id, secret) VALUES (${id}, 'wide ${id}')`);
    tables.push({ table: "wide", keyText: "CAST(id AS TEXT)", keys: BIG_KEYS });

    if (kind === "postgres") {
      const instants = ["2024-01-01 00:00:00.000001+00", "2024-01-01 00:00:00.000002+00", "2024-01-01 01:00:00.000001+01", "infinity", "-infinity", "1999-12-31 23:59:59.999999-08"];
      await fresh.db.exec(`CREATE TABLE timed (at timestamptz NOT NULL, n integer NOT NULL, ${secretColumns}, PRIMARY KEY (at, n))`);
      const timedKeys: string[] = [];
      for (const [index, at] of instants.entries()) {
        await fresh.db.query("INSERT INTO timed (at, n, secret) VALUES ($1::timestamptz, $2, $3)", [at, index, `timed ${index}`]);
        timedKeys.push(String(index));
      }
      tables.push({ table: "timed", keyText: "CAST(n AS TEXT)", keys: timedKeys });
    } else {
      await fresh.db.exec(`CREATE TABLE bytes (k BLOB NOT NULL, n INTEGER NOT NULL, ${secretColumns}, PRIMARY KEY (k, n))`);
      const blobKeys = ["00", "00ff", "ff", "7f00", ""];
      for (const [index, hex] of blobKeys.entries()) await fresh.db.exec(`INSERT INTO bytes (k, n, secret) VALUES (X'${hex}', ${index}, 'bytes ${index}')`);
      tables.push({ table: "bytes", keyText: "CAST(n AS TEXT)", keys: blobKeys.map((_, index) => String(index)) });
    }
    return tables;
  }

  async function secretsOf(table: string, keyText: string): Promise<Map<string, { secret: string; keyId: string | null }>> {
    const rows = await fresh.db.query<{ k: string; secret: string; secret_key_id: string | null }>(`SELECT ${keyText} AS k, secret, secret_key_id FROM ${table}`);
    return new Map(rows.map((row) => [String(row.k), { secret: row.secret, keyId: row.secret_key_id }]));
  }

  it("walks uuid+text, 64-bit and timestamp/blob keys across batch boundaries without losing a row", async () => {
    const tables = await createTables();
    const originals = new Map<string, Map<string, { secret: string; keyId: string | null }>>();
    for (const { table, keyText, keys } of tables) {
      const rows = await secretsOf(table, keyText);
      expect([...rows.keys()].sort(), table).toEqual([...keys].sort());
      originals.set(table, rows);
    }
    const expectAll = async (key: TestKey | null) => {
      for (const { table, keyText } of tables) {
        const now = await secretsOf(table, keyText);
        for (const [rowKey, original] of originals.get(table)!) {
          const stored = now.get(rowKey);
          expect(stored?.keyId, `${table} ${rowKey}`).toBe(key?.id ?? null);
          expect(key ? openValue(key.bytes, stored!.secret) : stored!.secret, `${table} ${rowKey}`).toBe(original.secret);
        }
      }
    };
    const total = tables.reduce((sum, table) => sum + table.keys.length, 0);
    const keyA = freshKey();
    const keyB = freshKey();
    for (const [args, expectKey, batch] of [
      [["rotate", "--new-key", keyA.base64], keyA, "2"],
      [["rotate", "--new-key", keyB.base64, "--old-keys", keyA.base64], keyB, "3"],
      [["decrypt", "--keys", keyB.base64], null, "1"],
    ] as const) {
      const { run, summary } = await runJson([...args, "--db", fresh.url, "--yes", "--batch-size", batch]);
      expect(run.code, run.stderr).toBe(0);
      expect(summary.rowsWritten, args[0]).toBe(total);
      expect(summary.tables.every((table: { conflicts: number }) => table.conflicts === 0)).toBe(true);
      await expectAll(expectKey);
    }
  });
});

describe.each(ENGINE_KINDS)("large and unusual values on %s", (kind) => {
  const fresh = freshDatabase(kind, "payload");

  beforeEach(async () => {
    expect((await runCli(["keys", "init", "--db", fresh.url])).code).toBe(0);
    await fresh.db.exec("CREATE TABLE payloads (id integer NOT NULL PRIMARY KEY, body text, body_key_id text REFERENCES dbcrypt_keys (active_key_digest))");
  });

  async function bodies(): Promise<Map<number, { body: string | null; keyId: string | null }>> {
    const rows = await fresh.db.query<{ id: number; body: string | null; body_key_id: string | null }>("SELECT id, body, body_key_id FROM payloads");
    return new Map(rows.map((row) => [Number(row.id), { body: row.body, keyId: row.body_key_id }]));
  }

  it("round-trips multi-megabyte and non-ASCII plaintexts through rotate and decrypt exactly", async () => {
    const values: (string | null)[] = [
      `${"x".repeat(2 * 1024 * 1024)}${randomUUID()}`,
      `${"😀𝄞中ß".repeat(100_000)}${randomUUID()}`,
      `e\u0301 \u202Eabc\u202C 👩‍👩‍👧 \uFEFFbom \u2028\u2029 crlf\r\n tab\t back\\slash "dq" 'sq' ${randomUUID()}`,
      `NULL'); DROP TABLE payloads; -- ${randomUUID()}`,
      "   ",
      "",
      "{}",
      null,
    ];
    for (const [index, value] of values.entries()) {
      if (value !== null) registerSecret(value);
      await fresh.db.query("INSERT INTO payloads (id, body) VALUES ($1, $2)", [index + 1, value]);
    }
    const keyA = freshKey();
    const keyB = freshKey();
    const expectBodies = async (key: TestKey | null) => {
      const stored = await bodies();
      values.forEach((value, index) => {
        const row = stored.get(index + 1)!;
        expect(row.keyId, `row ${index + 1}`).toBe(value === null ? null : key?.id ?? null);
        const plain = key && value !== null ? openValue(key.bytes, row.body!) : row.body;
        expect(plain === value, `row ${index + 1} differs (${plain?.length} vs ${value?.length} chars)`).toBe(true);
      });
    };
    const encrypt = await runCli(["rotate", "--db", fresh.url, "--new-key", keyA.base64, "--yes", "--batch-size", "3"]);
    expect(encrypt.code, encrypt.stderr).toBe(0);
    await expectBodies(keyA);
    const rotate = await runCli(["rotate", "--db", fresh.url, "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes"]);
    expect(rotate.code, rotate.stderr).toBe(0);
    await expectBodies(keyB);
    const decrypt = await runCli(["decrypt", "--db", fresh.url, "--keys", keyB.base64, "--yes", "--batch-size", "2"]);
    expect(decrypt.code, decrypt.stderr).toBe(0);
    await expectBodies(null);
  });

  it("rotates plaintexts that are not valid text losslessly, and decrypt refuses to mangle them", async () => {
    const keyA = freshKey();
    const keyB = freshKey();
    await fresh.db.query("INSERT INTO dbcrypt_keys (number, active_key_digest, created_at, test) VALUES (1, $1, CURRENT_TIMESTAMP, $2)", [keyA.id, sealValue(keyA.bytes, "coder")]);
    const binary = [Buffer.from([0xff, 0xfe, 0x00, 0x41, 0xc3]), Buffer.from("nul\u0000inside", "utf8")];
    for (const [index, bytes] of binary.entries()) {
      await fresh.db.query("INSERT INTO payloads (id, body, body_key_id) VALUES ($1, $2, $3)", [index + 1, sealBytes(keyA.bytes, bytes), keyA.id]);
    }
    registerSecret("fine text value");
    await fresh.db.query("INSERT INTO payloads (id, body, body_key_id) VALUES (3, $1, $2)", [sealValue(keyA.bytes, "fine text value"), keyA.id]);

    const rotate = await runCli(["rotate", "--db", fresh.url, "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes"]);
    expect(rotate.code, rotate.stderr).toBe(0);
    let stored = await bodies();
    binary.forEach((bytes, index) => {
      expect(stored.get(index + 1)!.keyId).toBe(keyB.id);
      expect(openBytes(keyB.bytes, stored.get(index + 1)!.body!).equals(bytes)).toBe(true);
    });

    const before = [...(await bodies()).entries()].filter(([id]) => id <= 2);
    const { run, summary } = await runJson(["decrypt", "--db", fresh.url, "--keys", keyB.base64, "--yes"]);
    expect(run.code).toBe(3);
    expect(summary.undecryptable.map((failure: { rowKey: { id: string }; failure: { reason: string } }) => [failure.rowKey.id, failure.failure.reason])).toEqual([
      ["1", expect.stringMatching(/not valid text/)],
      ["2", expect.stringMatching(/not valid text/)],
    ]);
    stored = await bodies();
    expect([...stored.entries()].filter(([id]) => id <= 2)).toEqual(before);
    expect(stored.get(3)).toEqual({ body: "fine text value", keyId: null });
    expect(summary.keysKept.map((kept: { keyId: string }) => kept.keyId)).toEqual([keyB.id]);
  });
});

/** A CLI process the test can signal; its output is checked for leaks like runCli's. */
function startCli(args: string[]): { child: ChildProcess; done: Promise<CliRun & { signal: NodeJS.Signals | null }> } {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: "1", NO_COLOR: "1" };
  delete env.DBCRYPT_DATABASE_URL;
  delete env.DATABASE_URL;
  const child = spawn(process.execPath, [CLI_PATH, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr!.on("data", (chunk: Buffer) => { stderr += chunk.toString(); });
  const done = new Promise<CliRun & { signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on("close", (code, signal) => {
      const leaks = findLeaks(stdout + stderr);
      if (leaks.length > 0) reject(new Error(`dbcrypt ${args[0]} printed secret material: ${leaks.join(", ")}`));
      else resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

describe.each(ENGINE_KINDS)("stopping and resuming on %s", (kind) => {
  const FILLER_ROWS = 800;
  let keyA: TestKey;
  let keyB: TestKey;
  let manifest: SeedManifest;
  const fresh = freshDatabase(kind, "resume");

  beforeEach(async () => {
    await createCoderSchema(fresh.db);
    keyA = freshKey();
    keyB = freshKey();
    manifest = await seedCoderData(fresh.db, { users: 6, key: keyA });
    registerManifest(manifest);
    // Enough single-row batches that a run is still busy when the test interrupts it.
    await fresh.db.exec("CREATE TABLE filler (id integer NOT NULL PRIMARY KEY, secret text, secret_key_id text REFERENCES dbcrypt_keys (active_key_digest))");
    for (let start = 1; start <= FILLER_ROWS; start += 250) {
      const params: unknown[] = [];
      const tuples = Array.from({ length: Math.min(250, FILLER_ROWS - start + 1) }, (_, offset) => {
        params.push(start + offset, sealValue(keyA.bytes, `filler secret ${start + offset}`), keyA.id);
        return `($${params.length - 2}, $${params.length - 1}, $${params.length})`;
      });
      await fresh.db.query(`INSERT INTO filler (id, secret, secret_key_id) VALUES ${tuples.join(", ")}`, params);
    }
  });

  async function fillerUnder(keyId: string): Promise<number> {
    const [row] = await fresh.db.query<{ n: string | number }>("SELECT count(*) AS n FROM filler WHERE secret_key_id = $1", [keyId]);
    return Number(row?.n ?? 0);
  }

  /** Every value is whole: under A or B, and decrypts with that key to what was seeded. */
  async function expectEveryValueWhole(): Promise<void> {
    for (const column of CODER_ENCRYPTED_COLUMNS) {
      const states = await readColumnStates(fresh.db, column.table, column.column, column.keyIdColumn, primaryKeyOf(column.table));
      for (const state of states) {
        if (state.keyId === null) continue;
        const entry = manifest.entries.find((candidate) => candidate.table === column.table && candidate.column === column.column && JSON.stringify(candidate.pk) === JSON.stringify(state.pk));
        const key = state.keyId === keyA.id ? keyA : state.keyId === keyB.id ? keyB : undefined;
        expect(key, `${column.table}.${column.column} under ${state.keyId}`).toBeDefined();
        expect(openValue(key!.bytes, state.value!), `${column.table}.${column.column} ${JSON.stringify(state.pk)}`).toBe(entry?.plaintext);
      }
    }
    const filler = await fresh.db.query<{ id: number; secret: string; secret_key_id: string }>("SELECT id, secret, secret_key_id FROM filler");
    expect(filler).toHaveLength(FILLER_ROWS);
    for (const row of filler) {
      const key = row.secret_key_id === keyA.id ? keyA : keyB;
      expect(row.secret_key_id === keyA.id || row.secret_key_id === keyB.id).toBe(true);
      expect(openValue(key.bytes, row.secret)).toBe(`filler secret ${row.id}`);
    }
  }

  async function waitForProgress(atLeast: number): Promise<void> {
    const deadline = Date.now() + 20_000;
    while ((await fillerUnder(keyB.id)) < atLeast) {
      if (Date.now() > deadline) throw new Error("the run made no progress");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  const rotateArgs = () => ["rotate", "--db", fresh.url, "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes", "--batch-size", "1"];

  it("stops at the deadline (exit 4), at a signal (exit 4), survives SIGKILL, and a re-run finishes the job", async () => {
    const deadline = await runCli([...rotateArgs(), "--max-duration", "1ms", "--json"]);
    expect(deadline.code, deadline.stderr).toBe(4);
    const stopped = JSON.parse(deadline.stdout);
    expect(stopped).toMatchObject({ status: "stopped", stopReason: "deadline", keysRevoked: [] });
    expect(stopped.continueWith).toMatch(/^dbcrypt rotate /);
    // The 1 ms deadline is checked first right after the confirmation: on a busy machine it has
    // already passed there, and the run rightly stops before writing the key row or any value.
    expect([[], [keyB.id]]).toContainEqual(stopped.keysInserted);
    expect((await keyRows(fresh.db)).map((row) => row.active_key_digest)).toEqual([keyA.id, ...stopped.keysInserted]);
    if (stopped.keysInserted.length === 0) expect(await fillerUnder(keyB.id)).toBe(0);
    await expectEveryValueWhole();

    // Paced so the run is still going when the signal lands, however busy the machine is.
    const interrupted = startCli([...rotateArgs(), "--json", "--sleep", "20ms"]);
    await waitForProgress(await fillerUnder(keyB.id) + 5);
    interrupted.child.kill("SIGTERM");
    const onSignal = await interrupted.done;
    expect(onSignal.code, onSignal.stderr).toBe(4);
    expect(JSON.parse(onSignal.stdout)).toMatchObject({ status: "stopped", stopReason: "signal" });
    const afterSignal = await fillerUnder(keyB.id);
    expect(afterSignal).toBeGreaterThan(0);
    expect(afterSignal).toBeLessThan(FILLER_ROWS);
    await expectEveryValueWhole();

    const killed = startCli([...rotateArgs(), "--sleep", "20ms"]);
    await waitForProgress(afterSignal + 5);
    killed.child.kill("SIGKILL");
    expect((await killed.done).signal).toBe("SIGKILL");
    expect(await fillerUnder(keyA.id)).toBeGreaterThan(0);
    await expectEveryValueWhole();
    if (fresh.database.target.kind === "sqlite") expect(existsSync(`${fresh.database.target.path}.dbcrypt-lock`)).toBe(true);

    // Any batch size resumes: progress lives in the data, not in the run.
    const finish = await runJson([...rotateArgs(), "--batch-size", "500"]);
    expect(finish.run.code, finish.run.stderr).toBe(0);
    expect(finish.summary).toMatchObject({ status: "done", keysInserted: [], keysRevoked: [keyA.id] });
    await assertAllValues(fresh.db, manifest, { keyId: keyB.id, key: keyB.bytes });
    expect(await fillerUnder(keyB.id)).toBe(FILLER_ROWS);
    await expectEveryValueWhole();
    expect((await keyRows(fresh.db)).map((row) => [row.number, row.active_key_digest, row.revoked_key_digest])).toEqual([[1, null, keyA.id], [2, keyB.id, null]]);
    if (fresh.database.target.kind === "sqlite") expect(existsSync(`${fresh.database.target.path}.dbcrypt-lock`)).toBe(false);

    const again = await runJson(rotateArgs());
    expect(again.run.code).toBe(0);
    expect(again.summary.status).toBe("nothing-to-do");
  });
});

describe("SQLite primary keys that can hold NULL, and values that are not text", () => {
  let key: TestKey;
  const fresh = freshDatabase("sqlite", "sqlite_quirks");

  beforeEach(async () => {
    expect((await runCli(["keys", "init", "--db", fresh.url])).code).toBe(0);
    key = freshKey();
    for (const value of ["s-null-a", "s-null-b", "s-good-1", "s-good-2"]) registerSecret(`secret ${value}`);
  });

  const fk = "secret_key_id TEXT REFERENCES dbcrypt_keys (active_key_digest)";

  it("refuses a table whose primary key holds NULLs instead of skipping rows after them", async () => {
    // SQLite lets a rowid table's PRIMARY KEY columns hold NULL; such rows cannot be addressed.
    await fresh.db.exec(`CREATE TABLE nullable_pk (a TEXT, b TEXT, secret TEXT, ${fk}, PRIMARY KEY (a, b))`);
    await fresh.db.exec("INSERT INTO nullable_pk (a, b, secret) VALUES (NULL, 'x', 'secret s-null-a'), ('m', NULL, 'secret s-null-b'), ('m', 'n', 'secret s-good-1'), ('q', 'r', 'secret s-good-2')");
    const before = await checksumDatabase(fresh.db, ["nullable_pk", "dbcrypt_keys"]);
    const run = await runCli(["rotate", "--db", fresh.url, "--new-key", key.base64, "--yes", "--batch-size", "1"]);
    expect(run.code, run.stdout + run.stderr).toBe(3);
    expect(run.stderr).toContain("nullable_pk (secret)");
    expect(await checksumDatabase(fresh.db, ["nullable_pk", "dbcrypt_keys"])).toBe(before);
  });

  it("walks such a table by a unique NOT NULL key when it has one, and a NULL-free nullable key as usual", async () => {
    await fresh.db.exec(`CREATE TABLE nullable_pk (a TEXT, b TEXT, handle TEXT NOT NULL UNIQUE, secret TEXT, ${fk}, PRIMARY KEY (a, b))`);
    await fresh.db.exec("INSERT INTO nullable_pk (a, b, handle, secret) VALUES (NULL, 'x', 'h1', 'secret s-null-a'), ('m', NULL, 'h2', 'secret s-null-b'), ('m', 'n', 'h3', 'secret s-good-1')");
    await fresh.db.exec(`CREATE TABLE plain_pk (id TEXT PRIMARY KEY, secret TEXT, ${fk})`);
    await fresh.db.exec("INSERT INTO plain_pk (id, secret) VALUES ('1', 'secret s-good-1'), ('2', 'secret s-good-2')");
    const run = await runCli(["rotate", "--db", fresh.url, "--new-key", key.base64, "--yes", "--batch-size", "1"]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    for (const table of ["nullable_pk", "plain_pk"]) {
      const rows = await fresh.db.query<{ secret: string; secret_key_id: string }>(`SELECT secret, secret_key_id FROM ${table}`);
      expect(rows.every((row) => row.secret_key_id === key.id && openValue(key.bytes, row.secret).startsWith("secret s-")), table).toBe(true);
    }
  });

  it("never rewrites a BLOB stored in a TEXT column, and does not report success", async () => {
    await fresh.db.exec(`CREATE TABLE mixed_types (id INTEGER PRIMARY KEY, secret TEXT, ${fk})`);
    await fresh.db.exec("INSERT INTO mixed_types (id, secret) VALUES (1, X'00ff10c3'), (2, 'secret s-good-1')");
    const run = await runCli(["rotate", "--db", fresh.url, "--new-key", key.base64, "--yes"]);
    expect(run.code).not.toBe(0);
    const [blob] = await fresh.db.query<{ t: string; hex: string; secret_key_id: string | null }>("SELECT typeof(secret) AS t, hex(secret) AS hex, secret_key_id FROM mixed_types WHERE id = 1");
    expect(blob).toEqual({ t: "blob", hex: "00FF10C3", secret_key_id: null });
    const [text] = await fresh.db.query<{ secret: string; secret_key_id: string }>("SELECT secret, secret_key_id FROM mixed_types WHERE id = 2");
    expect(openValue(key.bytes, text!.secret)).toBe("secret s-good-1");
  });
});
