/**
 * The census the database takes from Kubernetes cell prefixes must equal the census of reading
 * every row, on both databases, over what real Obot tables hold: keys whose prefixes end at every
 * base64 boundary, names that are prefixes of each other (key0, key01), JSON envelopes, identity
 * values, rows flagged unencrypted, NULLs, '' and cells under no supplied key (kms, not base64).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Dialect } from "../../src/db/dialect.js";
import { PostgresDialect } from "../../src/db/postgres.js";
import { SqliteDialect } from "../../src/db/sqlite.js";
import { Keyring } from "../../src/crypto/keyring.js";
import { takeCensus } from "../../src/ops/census.js";
import { planSchema } from "../../src/schema/discover.js";
import { k8sCellPrefixes } from "../../src/crypto/schemes/kubernetes.js";
import { k8sKey, sealK8s } from "../support/k8s-crypto.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";

// Names of lengths 1..6 put the prefix's end at every position in a base64 quantum.
// A name too long for the first bytes a key id is read from, and a name that is not ASCII.
const keys = ["a", "ab", "key", "key0", "key01", "key012", "k".repeat(200), "schlüssel"].map((name, index) => k8sKey(index % 2 === 0 ? "aesgcm" : "secretbox", name));

describe("Kubernetes cell prefixes", () => {
  it("match exactly the cells under their key, bare and in Obot's envelope", () => {
    for (const key of keys) {
      const prefixes = k8sCellPrefixes(`${key.provider}:${key.name}`) ?? [];
      for (let round = 0; round < 30; round++) {
        const cell = sealK8s(key, `value ${round}`, "");
        const envelope = JSON.stringify({ _obot_encrypted_env: cell });
        for (const [text, form] of [[cell, "bare"], [envelope, "json-envelope"]] as const) {
          const prefix = prefixes.find((candidate) => candidate.form === form);
          expect(text.startsWith(prefix?.literal as string)).toBe(true);
          if (prefix?.next) expect(prefix.next).toContain(text.charAt(prefix.literal.length));
        }
        for (const other of keys.filter((candidate) => candidate !== key)) {
          const otherPrefix = (k8sCellPrefixes(`${other.provider}:${other.name}`) ?? [])[0];
          const matches = cell.startsWith(otherPrefix?.literal as string) && (otherPrefix?.next === "" || (otherPrefix?.next ?? "").includes(cell.charAt((otherPrefix?.literal as string).length)));
          expect(matches, `${key.name} cell vs ${other.name} prefix`).toBe(false);
        }
      }
    }
  });
});

describe.each(ENGINE_KINDS)("the prefix census equals the row-by-row census on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let dialect: Dialect;

  beforeAll(async () => {
    database = await createTestDatabase(kind, "prefix_census");
    db = await openTestDb(database.target);
    await db.exec("CREATE TABLE dbcrypt_keys (number integer PRIMARY KEY, active_key_digest text UNIQUE, revoked_key_digest text UNIQUE, created_at text, revoked_at text, test text NOT NULL)");
    await db.exec("CREATE TABLE properties (key text PRIMARY KEY, encrypted boolean, value text, other text)");
    const flag = (on: boolean) => (kind === "postgres" ? on : on ? 1 : 0);
    let id = 0;
    const insert = async (encrypted: boolean | null, value: string | null, other: string | null) => {
      id++;
      await db.query("INSERT INTO properties (key, encrypted, value, other) VALUES ($1, $2, $3, $4)", [`p${String(id).padStart(4, "0")}`, encrypted === null ? null : flag(encrypted), value, other]);
    };
    for (const [index, key] of keys.entries()) {
      for (let round = 0; round < 5 + index; round++) {
        const cell = sealK8s(key, `v${round}`, "");
        await insert(true, round % 3 === 0 ? JSON.stringify({ _obot_encrypted_env: cell }) : cell, round % 2 === 0 ? sealK8s(keys[(index + 1) % keys.length]!, "o", "") : null);
      }
    }
    for (let round = 0; round < 4; round++) await insert(true, Buffer.from(`identity ${round}`).toString("base64"), "");
    for (let round = 0; round < 3; round++) await insert(false, `plain ${round}`, round === 0 ? null : "  ");
    await insert(true, Buffer.from("k8s:enc:kms:v2:aws-kms:\x0a\x01x").toString("base64"), null);
    await insert(true, "not base64 at all", null);
    await insert(true, sealK8s(keys[0]!, "x", "").slice(0, -1), null);
    await insert(true, null, null);
    // A NULL flag means unencrypted, as in JavaScript; the values then count as plaintext.
    await insert(null, sealK8s(keys[1]!, "flag unknown", ""), null);
    await insert(null, null, null);
    // Text the prefix matches but the rest is not a cell: a second JSON field, a non-base64 tail.
    const cell = sealK8s(keys[2]!, "y", "");
    await insert(true, `{"_obot_encrypted_env":"${cell}","x":"${cell.slice(0, 4)}"}`, null);
    await insert(true, `${cell.slice(0, -4)}ü==`, null);
    dialect = database.target.kind === "postgres"
      ? await PostgresDialect.connect(database.target.url, "dbcrypt_keys", { command: "test" })
      : SqliteDialect.open(database.target.path, "dbcrypt_keys", { readOnly: true, busyTimeoutMs: 2_000 });
  });

  afterAll(async () => {
    await dialect?.close();
    await db?.close();
    await database?.cleanup();
  });

  it("for every key, NULLs and plaintext, column by column", async () => {
    const config = { scheme: "k8s-encryption-config", preset: "none" as const, tables: { properties: { rowFlag: "encrypted", deletePolicy: "delete-row" as const, columns: { value: {}, other: {} } } } };
    const plan = planSchema(await dialect.introspect(), config, "dbcrypt_keys");
    const supplied = new Keyring(undefined, keys.map((key) => ({ id: `${key.provider}:${key.name}`, seal: () => "", open: () => ({ ok: false as const, reason: "" }) })));
    // Counts the rows read one by one, to prove the database did the counting.
    let rowsRead = 0;
    const counting = new Proxy(dialect, {
      get(target, name, receiver) {
        if (name !== "readBatch") {
          const member = Reflect.get(target, name, receiver);
          return typeof member === "function" ? member.bind(target) : member;
        }
        return async (...args: Parameters<Dialect["readBatch"]>) => {
          const rows = await target.readBatch(...args);
          rowsRead += rows.length;
          return rows;
        };
      },
    });
    const bySql = await takeCensus(counting, plan, supplied);
    const readBySql = rowsRead;
    rowsRead = 0;
    // A plan of its own, so the spelling each census learns is its own.
    const rowsPlan = planSchema(await dialect.introspect(), config, "dbcrypt_keys");
    const byRows = await takeCensus(counting, { ...rowsPlan, scheme: { ...rowsPlan.scheme, cellPrefixes: undefined } }, supplied);
    expect(readBySql, "rows read when the database counts").toBe(4 + 3 + 3 + 2 + 2);
    expect(rowsRead, "rows read one by one").toBe(keys.reduce((sum, _, index) => sum + 5 + index, 0) + 4 + 3 + 4 + 4);
    expect(plan.tables[0]?.columns.map((column) => column.spelling)).toEqual(rowsPlan.tables[0]?.columns.map((column) => column.spelling));
    const shape = (census: typeof bySql) => census.columns.map((column) => ({ column: column.label, encrypted: Object.fromEntries([...column.encryptedByKeyId].sort()), plaintext: column.plaintext }));
    expect(shape(bySql)).toEqual(shape(byRows));
    const value = shape(bySql).find((column) => column.column === "properties.value");
    expect(Object.keys(value?.encrypted ?? {}).sort()).toEqual([...keys.map((key) => `${key.provider}:${key.name}`), "identity", "kms:v2:aws-kms/?", "not-base64"].sort());
    expect(value?.plaintext).toMatchObject({ nulls: 2, total: 3 + 2 + 1 });
  });
});
