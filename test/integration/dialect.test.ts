/**
 * The dialects against real databases, with a second connection playing the application that keeps
 * writing while dbcrypt runs: compare-and-swap must never overwrite a concurrent write, a row
 * changed underneath must be picked up by a later pass, and a value written under an old key after
 * the walk passed it must keep that key alive and the run from reporting success.
 */
import { NO_PACING } from "../../src/ops/pacing.js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EncryptionKey } from "../../src/crypto/encryption-key.js";
import type { BatchRow, Dialect, RowKey, RowWrite } from "../../src/db/dialect.js";
import { PostgresDialect } from "../../src/db/postgres.js";
import { SqliteDialect } from "../../src/db/sqlite.js";
import { isDbcryptError } from "../../src/errors.js";
import { rotate, type RotateRequest } from "../../src/ops/rotate.js";
import type { Session } from "../../src/ops/session.js";
import { planSchema } from "../../src/schema/discover.js";
import type { EncryptedTable } from "../../src/schema/model.js";
import { openValue, randomKey, sealValue, type TestKey } from "../support/coder-crypto.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type EngineKind, type TestDb } from "../support/test-db.js";
import { exitCodeForOutcome } from "../../src/cli/exit-codes.js";

const KEYS_TABLE = "dbcrypt_keys";

async function openDialect(database: CreatedTestDatabase): Promise<Dialect> {
  const target = database.target;
  return target.kind === "postgres"
    ? PostgresDialect.connect(target.url, KEYS_TABLE, { command: "test" })
    : SqliteDialect.open(target.path, KEYS_TABLE, { readOnly: false, busyTimeoutMs: 2_000 });
}

function productKey(key: TestKey): EncryptionKey {
  return EncryptionKey.parse(key.base64, "test key");
}

/** A write's claim about the row it read: its key, what it held, and any version token the dialect keeps. */
function asRead(row: BatchRow): Omit<RowWrite, "next"> {
  const { fields, ...identity } = row;
  return { ...identity, expected: fields };
}

/** Row keys are text on PostgreSQL and native (bigint) on SQLite: compare them as text. */
function keyText(rowKeys: readonly RowKey[]): string[] {
  return rowKeys.map((rowKey) => rowKey.map(String).join("|")).sort();
}

interface Fixture {
  database: CreatedTestDatabase;
  /** The application's own connection. */
  db: TestDb;
  dialect: Dialect;
  keyA: TestKey;
  keyB: TestKey;
}

/** Per test: a database with the keys table, key A active in it, and `createTable` run on it. */
function dialectFixture(kind: EngineKind, label: string, createTable: (fixture: Fixture) => Promise<void>): Fixture {
  const fixture = {} as Fixture;
  beforeEach(async () => {
    fixture.database = await createTestDatabase(kind, label);
    fixture.db = await openTestDb(fixture.database.target);
    fixture.dialect = await openDialect(fixture.database);
    await fixture.dialect.createKeysTable();
    fixture.keyA = randomKey();
    fixture.keyB = randomKey();
    await fixture.dialect.insertActiveKey(fixture.keyA.id, sealValue(fixture.keyA.bytes, "coder"));
    await createTable(fixture);
  });
  afterEach(async () => {
    await fixture.dialect?.close();
    await fixture.db?.close();
    await fixture.database?.cleanup();
  });
  return fixture;
}

describe.each(ENGINE_KINDS)("dialect compare-and-swap on %s", (kind) => {
  const fixture = dialectFixture(kind, "dialect", async ({ db, keyA }) => {
    await db.exec(
      `CREATE TABLE secrets (id integer NOT NULL PRIMARY KEY, ` +
        `token text, token_key_id text REFERENCES ${KEYS_TABLE} (active_key_digest), ` +
        `note text, note_key_id text REFERENCES ${KEYS_TABLE} (active_key_digest))`,
    );
    for (let id = 1; id <= 6; id++) {
      await db.query("INSERT INTO secrets (id, token, token_key_id, note, note_key_id) VALUES ($1, $2, $3, $4, $3)", [
        id, sealValue(keyA.bytes, `token ${id}`), keyA.id, sealValue(keyA.bytes, `note ${id}`),
      ]);
    }
  });

  async function secretsTable(): Promise<EncryptedTable> {
    const plan = planSchema(await fixture.dialect.introspect(), {}, KEYS_TABLE);
    const table = plan.tables.find((candidate) => candidate.ref.name === "secrets");
    if (!table) throw new Error("secrets was not discovered");
    expect(table.columns.map((column) => column.column)).toEqual(["note", "token"]);
    return table;
  }

  async function stored(): Promise<Map<number, { token: string | null; tokenKey: string | null; note: string | null; noteKey: string | null }>> {
    const rows = await fixture.db.query<{ id: number; token: string | null; token_key_id: string | null; note: string | null; note_key_id: string | null }>(
      "SELECT id, token, token_key_id, note, note_key_id FROM secrets",
    );
    return new Map(rows.map((row) => [Number(row.id), { token: row.token, tokenKey: row.token_key_id, note: row.note, noteKey: row.note_key_id }]));
  }

  it("writes only rows still as read; rows changed, deleted or re-keyed underneath are conflicts and keep the concurrent state", async () => {
    const table = await secretsTable();
    const b = productKey(fixture.keyB);
    await fixture.dialect.insertActiveKey(b.id, b.seal("coder"));
    const rows = await fixture.dialect.readBatch(table, { kind: "not-under-key", keyId: b.id }, undefined, 100);
    expect(rows).toHaveLength(6);

    // The application, on its own connection, between our read and our write:
    const concurrentToken = sealValue(fixture.keyA.bytes, "token 2, rewritten by the app");
    await fixture.db.query("UPDATE secrets SET token = $1 WHERE id = 2", [concurrentToken]);
    await fixture.db.query("DELETE FROM secrets WHERE id = 3");
    await fixture.db.query("UPDATE secrets SET note = $1, note_key_id = NULL WHERE id = 4", ["note 4 in plaintext"]);
    await fixture.db.query("UPDATE secrets SET token_key_id = NULL WHERE id = 5");
    const before = await stored();

    const writes: RowWrite[] = rows.map((row) => ({
      ...asRead(row),
      next: row.fields.map((field) => ({ value: b.seal(openValue(fixture.keyA.bytes, field.value!)), keyId: b.id })),
    }));
    const outcome = await fixture.dialect.writeBatch(table, writes);
    expect(outcome.written).toBe(2);
    expect(keyText(outcome.conflicts)).toEqual(["2", "3", "4", "5"]);

    const after = await stored();
    expect(after.has(3)).toBe(false);
    for (const id of [2, 4, 5]) expect(after.get(id), `row ${id}`).toEqual(before.get(id));
    for (const id of [1, 6]) {
      const row = after.get(id)!;
      expect([row.tokenKey, row.noteKey]).toEqual([b.id, b.id]);
      expect([openValue(fixture.keyB.bytes, row.token!), openValue(fixture.keyB.bytes, row.note!)]).toEqual([`token ${id}`, `note ${id}`]);
    }
  });

  it("treats NULL and '' as different values when comparing (a NULL-safe compare, not a lenient one)", async () => {
    const table = await secretsTable();
    await fixture.db.query("UPDATE secrets SET note = NULL, note_key_id = NULL WHERE id = 1");
    const [row] = await fixture.dialect.readBatch(table, { kind: "encrypted" }, undefined, 1);
    expect(row!.fields[0]).toEqual({ value: null, keyId: null });
    await fixture.db.query("UPDATE secrets SET note = '' WHERE id = 1");
    const outcome = await fixture.dialect.writeBatch(table, [{ ...asRead(row!), next: [{ value: "x", keyId: null }, { value: "y", keyId: null }] }]);
    expect(outcome).toEqual({ written: 0, conflicts: [row!.rowKey] });
    expect((await stored()).get(1)!.note).toBe("");
  });

  it("pages by primary key without repeating or skipping rows", async () => {
    const table = await secretsTable();
    const seen: string[] = [];
    let after: RowKey | undefined;
    for (;;) {
      const rows = await fixture.dialect.readBatch(table, { kind: "encrypted" }, after, 4);
      if (rows.length === 0) break;
      seen.push(...rows.map((row) => String(row.rowKey[0])));
      after = rows[rows.length - 1]!.rowKey;
    }
    expect(seen).toEqual(["1", "2", "3", "4", "5", "6"]);
  });

  it("refuses to revoke a key a foreign key still references, and revokes it once unused", async () => {
    const failure = await fixture.dialect.revokeKey(fixture.keyA.id).catch((error: unknown) => error);
    expect(isDbcryptError(failure) && failure.code).toBe("key_in_use");
    await fixture.db.exec("UPDATE secrets SET token = 'plain', token_key_id = NULL, note = 'plain', note_key_id = NULL");
    expect(await fixture.dialect.revokeKey(fixture.keyA.id)).toBe("revoked");
    expect(await fixture.dialect.revokeKey(fixture.keyA.id)).toBe("not-active");
  });

  it("inserts a key row once however often it is asked, with number = max + 1", async () => {
    const first = await fixture.dialect.insertActiveKey(fixture.keyB.id, sealValue(fixture.keyB.bytes, "coder"));
    const again = await fixture.dialect.insertActiveKey(fixture.keyB.id, sealValue(fixture.keyB.bytes, "coder"));
    expect(first.number).toBe(2);
    expect(again).toEqual(first);
    expect((await fixture.dialect.readKeys()).map((row) => row.activeKeyDigest)).toEqual([fixture.keyA.id, fixture.keyB.id]);
  });

  it("lets only one run hold the run lock", async () => {
    const lock = await fixture.dialect.acquireRunLock("rotate");
    const second = await openDialect(fixture.database);
    try {
      const failure = await second.acquireRunLock("rotate").catch((error: unknown) => error);
      expect(isDbcryptError(failure) && failure.code).toBe("lock_held");
      await lock.release();
      const retaken = await second.acquireRunLock("rotate");
      await retaken.release();
    } finally {
      await second.close();
    }
  });
});

describe.each(ENGINE_KINDS)("rotate while the application keeps writing, on %s", (kind) => {
  const fixture = dialectFixture(kind, "concurrent", async ({ db, keyA }) => {
    await db.exec(`CREATE TABLE tokens (id integer NOT NULL PRIMARY KEY, token text, token_key_id text REFERENCES ${KEYS_TABLE} (active_key_digest))`);
    for (let id = 1; id <= 8; id++) await db.query("INSERT INTO tokens (id, token, token_key_id) VALUES ($1, $2, $3)", [id, sealValue(keyA.bytes, `token ${id}`), keyA.id]);
  });

  /** The real dialect, with hooks that run the application's writes at chosen moments. */
  function withHooks(hooks: { beforeWrite?: (call: number) => Promise<void>; afterWalk?: () => Promise<void> }): Dialect {
    let writes = 0;
    let walked = false;
    return new Proxy(fixture.dialect, {
      get(target, property, receiver) {
        if (property === "writeBatch") {
          return async (...args: Parameters<Dialect["writeBatch"]>) => {
            writes++;
            await hooks.beforeWrite?.(writes);
            return target.writeBatch(...args);
          };
        }
        if (property === "readBatch") {
          return async (...args: Parameters<Dialect["readBatch"]>) => {
            const rows = await target.readBatch(...args);
            // A short batch is the table's last: the walk has passed every row by now.
            if (rows.length < args[3] && !walked) {
              walked = true;
              await hooks.afterWalk?.();
            }
            return rows;
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  function request(): RotateRequest {
    return {
      newKey: productKey(fixture.keyB),
      oldKeys: [productKey(fixture.keyA)],
      batchSize: 3,
      pacing: NO_PACING,
      cryptoThreads: 0,
      emit: () => undefined,
      shouldStop: () => false,
      stopReason: () => undefined,
      confirm: async () => undefined,
    };
  }

  function session(hooked: Dialect): Session {
    return { dialect: hooked, config: {}, configPath: undefined };
  }

  async function tokens(): Promise<Map<number, { value: string; keyId: string | null }>> {
    const rows = await fixture.db.query<{ id: number; token: string; token_key_id: string | null }>("SELECT id, token, token_key_id FROM tokens");
    return new Map(rows.map((row) => [Number(row.id), { value: row.token, keyId: row.token_key_id }]));
  }

  it("reads the next batch ahead while one is planned, but not when the run is paced", async () => {
    const readsBeforeFirstWrite = async (pacing: RotateRequest["pacing"]): Promise<number> => {
      let reads = 0;
      let atFirstWrite: number | undefined;
      const counting = new Proxy(fixture.dialect, {
        get(target, property, receiver) {
          if (property === "readBatch") return (...args: Parameters<Dialect["readBatch"]>) => { reads++; return target.readBatch(...args); };
          if (property === "writeBatch") return (...args: Parameters<Dialect["writeBatch"]>) => { atFirstWrite ??= reads; return target.writeBatch(...args); };
          const value = Reflect.get(target, property, receiver) as unknown;
          return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      const result = await rotate(session(counting), { ...request(), pacing });
      expect(result.status).toBe("done");
      return atFirstWrite ?? 0;
    };
    expect(await readsBeforeFirstWrite(NO_PACING)).toBe(2);
    // Plaintext again, so the paced run has every row to do (keyA is revoked by now).
    await fixture.db.query("UPDATE tokens SET token = 'plain ' || id, token_key_id = NULL");
    expect(await readsBeforeFirstWrite({ ...NO_PACING, sleepMs: 1 })).toBe(1);
  });

  it("re-reads a row changed between read and write in a later pass, and encrypts the application's value", async () => {
    const hooked = withHooks({
      beforeWrite: async (call) => {
        if (call === 1) await fixture.db.query("UPDATE tokens SET token = $1 WHERE id = 2", [sealValue(fixture.keyA.bytes, "token 2, rewritten by the app")]);
      },
    });
    const result = await rotate(session(hooked), request());
    expect(result.status).toBe("done");
    expect(exitCodeForOutcome({ kind: "operation", status: result.status })).toBe(0);
    expect(result.tables[0]!.conflicts).toBe(1);
    expect(result.keysRevoked).toEqual([fixture.keyA.id]);
    const rows = await tokens();
    for (const [id, row] of rows) {
      expect(row.keyId).toBe(fixture.keyB.id);
      expect(openValue(fixture.keyB.bytes, row.value)).toBe(id === 2 ? "token 2, rewritten by the app" : `token ${id}`);
    }
  });

  it("does not report success when a value lands under the old key after the walk passed it", async () => {
    // A server still configured with the old primary writes one more row (Coder issue #9579).
    const late = sealValue(fixture.keyA.bytes, "written late under the old key");
    const hooked = withHooks({ afterWalk: () => fixture.db.query("INSERT INTO tokens (id, token, token_key_id) VALUES (100, $1, $2)", [late, fixture.keyA.id]).then(() => undefined) });
    const result = await rotate(session(hooked), request());
    expect(result.keysRevoked).toEqual([]);
    expect(result.keysKept.map((kept) => kept.keyId)).toEqual([fixture.keyA.id]);
    expect(exitCodeForOutcome({ kind: "operation", status: result.status })).toBe(4);
    expect(result.status).not.toBe("done");
    expect(result.continueWith).toBeDefined();
    expect((await tokens()).get(100)).toEqual({ value: late, keyId: fixture.keyA.id });
    expect((await fixture.dialect.readKeys()).map((row) => row.activeKeyDigest)).toEqual([fixture.keyA.id, fixture.keyB.id]);

    const rerun = await rotate(session(fixture.dialect), request());
    expect(exitCodeForOutcome({ kind: "operation", status: rerun.status })).toBe(0);
    expect(rerun.keysRevoked).toEqual([fixture.keyA.id]);
    expect(openValue(fixture.keyB.bytes, (await tokens()).get(100)!.value)).toBe("written late under the old key");
  });
});

/**
 * Where a cell depends on other columns of its row (a workspace id keys it, or the columns of its
 * additional data), a write must land only while they still hold what was read: a cell sealed for
 * the old workspace in a row moved to another could never be opened. PostgreSQL's xmin covers any
 * change to the row; SQLite compares the context columns themselves.
 */
describe.each(ENGINE_KINDS)("dialect compare-and-swap on context columns and the row flag on %s", (kind) => {
  const fixture = dialectFixture(kind, "dialect_ctx", async ({ db }) => {
    await db.exec("CREATE TABLE messages (id integer NOT NULL PRIMARY KEY, workspace_id text NOT NULL, encrypted boolean NOT NULL, content text)");
    for (let id = 1; id <= 4; id++) await db.query("INSERT INTO messages (id, workspace_id, encrypted, content) VALUES ($1, $2, $3, $4)", [id, `ws-${id}`, kind === "postgres" ? false : 0, `message ${id}`]);
  });

  function messagesTable(): EncryptedTable {
    return {
      ref: { schema: undefined, name: "messages" },
      rowKey: ["id"],
      rowKeyTypes: ["integer"],
      columns: [{ column: "content", keyIdColumn: undefined, keepPlaintext: "never", clearTo: null, source: "config" }],
      deletePolicy: { action: "delete-row" },
      context: [{ input: "workspace", column: "workspace_id" }, { input: "encrypted", column: "encrypted" }],
      rowFlag: "encrypted",
    };
  }

  it("reads the context with each row, leaves rows whose context changed, and writes the row flag", async () => {
    const table = messagesTable();
    const rows = await fixture.dialect.readBatch(table, { kind: "all" }, undefined, 10);
    expect(rows.map((row) => row.context?.workspace)).toEqual(["ws-1", "ws-2", "ws-3", "ws-4"]);
    expect(rows.every((row) => row.context?.encrypted === (kind === "postgres" ? "false" : "0"))).toBe(true);
    // The application moves message 2 to another workspace, touching nothing else.
    await fixture.db.query("UPDATE messages SET workspace_id = 'ws-moved' WHERE id = 2");
    const outcome = await fixture.dialect.writeBatch(table, rows.map((row) => ({ ...asRead(row), next: [{ value: `sealed for ${row.context?.workspace}`, keyId: "k" }], flag: true })));
    expect(outcome.written).toBe(3);
    expect(keyText(outcome.conflicts)).toEqual(["2"]);
    const after = await fixture.db.query<{ id: number; workspace_id: string; encrypted: boolean | number; content: string }>("SELECT id, workspace_id, encrypted, content FROM messages ORDER BY id");
    expect(after.map((row) => [Number(row.id), row.workspace_id, Boolean(row.encrypted), row.content])).toEqual([
      [1, "ws-1", true, "sealed for ws-1"],
      [2, "ws-moved", false, "message 2"],
      [3, "ws-3", true, "sealed for ws-3"],
      [4, "ws-4", true, "sealed for ws-4"],
    ]);
  });
});
