/**
 * Exact SQL text from the pure builders (PostgreSQL, SQLite, keys table), like gh-ost's builder
 * tests, plus identifier quoting for hostile names: every identifier must reach the database
 * as one quoted identifier, whatever characters it holds.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  KEY_COLUMNS,
  createKeysTablePostgresSql,
  createKeysTableSqliteSql,
  insertKeySql,
  postgresPlaceholder,
  revokeKeySql,
  selectKeyByDigestSql,
  selectKeysSql,
  sqlitePlaceholder,
} from "../../src/db/keys-table-sql.js";
import {
  censusByKeySql,
  censusSql,
  deleteBatchSql,
  selectBatchSql,
  updateBatchByVersionSql,
  updateBatchSql,
} from "../../src/db/postgres-sql.js";
import { qualifiedTable, quoteIdent } from "../../src/db/identifiers.js";
import { partitionFromText, sqlitePartitionOf } from "../../src/db/partition.js";
import { censusByKeySqlite, censusSqlite, deleteRowSqlite, selectBatchSqlite, updateRowSqlite } from "../../src/db/sqlite-sql.js";
import type { EncryptedColumn, EncryptedTable } from "../../src/schema/model.js";

function column(name: string, overrides: Partial<EncryptedColumn> = {}): EncryptedColumn {
  return { column: name, keyIdColumn: `${name}_key_id`, keepPlaintext: "never", clearTo: "", source: "foreign-key", ...overrides };
}

/** Coder's user_links: composite primary key, two encrypted columns. */
const userLinks: EncryptedTable = {
  ref: { schema: "public", name: "user_links" },
  rowKey: ["user_id", "login_type"],
  rowKeyTypes: ["uuid", "login_type"],
  columns: [column("oauth_access_token"), column("oauth_refresh_token")],
  context: [],
  deletePolicy: { action: "delete-row" },
};

/** Coder's workspace_secrets: one column cleared to NULL with a timestamp. */
const workspaceSecrets: EncryptedTable = {
  ref: { schema: "public", name: "workspace_secrets" },
  rowKey: ["id"],
  rowKeyTypes: ["uuid"],
  columns: [column("value", { clearTo: null })],
  context: [],
  deletePolicy: { action: "clear", setTimestampColumns: ["cleared_at"] },
};

/** A SQLite table: no schema. */
const sqliteGitsshkeys: EncryptedTable = {
  ref: { schema: undefined, name: "gitsshkeys" },
  rowKey: ["user_id"],
  rowKeyTypes: ["TEXT"],
  columns: [column("private_key")],
  context: [],
  deletePolicy: { action: "clear", setTimestampColumns: [] },
};

const HOSTILE = {
  schema: 'My "Schema"',
  table: 'we"ird; DROP TABLE users; --',
  key1: "Id Col",
  key2: "ключ",
  value1: 'Sec"ret',
  keyId1: 'Sec"ret_key_id',
  value2: "UPPER Case 🔑",
  keyId2: "UPPER Case 🔑_key_id",
  stamp: "Cleared At'); --",
};

const hostile: EncryptedTable = {
  ref: { schema: HOSTILE.schema, name: HOSTILE.table },
  rowKey: [HOSTILE.key1, HOSTILE.key2],
  rowKeyTypes: ["bigint", "text"],
  columns: [column(HOSTILE.value1, { clearTo: "" }), column(HOSTILE.value2, { clearTo: null })],
  context: [],
  deletePolicy: { action: "clear", setTimestampColumns: [HOSTILE.stamp] },
};

/**
 * Removes every well-formed quoted identifier and string literal; what is left must be plain SQL
 * made of keywords, placeholders and punctuation — no fragment of any identifier.
 */
function skeleton(sql: string): string {
  return sql.replace(/"(?:[^"]|"")*"/g, "<id>").replace(/E?'(?:[^'\\]|''|\\.)*'/g, "<lit>");
}

function quotedIdentifiers(sql: string): string[] {
  return [...sql.matchAll(/"((?:[^"]|"")*)"/g)].map((match) => (match[1] as string).replace(/""/g, '"'));
}

describe("quoteIdent / qualifiedTable", () => {
  it.each([
    ["users", '"users"'],
    ["Users", '"Users"'],
    ['a"b', '"a""b"'],
    ['"', '""""'],
    ["with space", '"with space"'],
    ["semi;colon", '"semi;colon"'],
    ["ключ", '"ключ"'],
    ["emoji 🔑", '"emoji 🔑"'],
    ["x' OR '1'='1", `"x' OR '1'='1"`],
  ])("quotes %j", (name, quoted) => {
    expect(quoteIdent(name)).toBe(quoted);
  });

  it("qualifies with the schema when there is one", () => {
    expect(qualifiedTable(userLinks)).toBe('"public"."user_links"');
    expect(qualifiedTable(sqliteGitsshkeys)).toBe('"gitsshkeys"');
    expect(qualifiedTable(hostile)).toBe('"My ""Schema"""."we""ird; DROP TABLE users; --"');
  });

  it("round-trips any identifier through quoting", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", minLength: 1 }), (name) => {
        const quoted = quoteIdent(name);
        expect(quotedIdentifiers(quoted)).toEqual([name]);
        expect(skeleton(quoted)).toBe("<id>");
      }),
    );
  });
});

describe("PostgreSQL batch builders, composite key (user_links)", () => {
  const select =
    'SELECT t."user_id"::text, t."login_type"::text, t."oauth_access_token", t."oauth_access_token_key_id", ' +
    't."oauth_refresh_token", t."oauth_refresh_token_key_id", t.xmin::text FROM "public"."user_links" AS t WHERE ';
  const notUnderKey =
    "(((t.\"oauth_access_token_key_id\" <> $1 AND t.\"oauth_access_token_key_id\" <> '') OR " +
    "(NULLIF(t.\"oauth_access_token_key_id\", '') IS NULL AND t.\"oauth_access_token\" IS NOT NULL)) OR " +
    "((t.\"oauth_refresh_token_key_id\" <> $1 AND t.\"oauth_refresh_token_key_id\" <> '') OR " +
    "(NULLIF(t.\"oauth_refresh_token_key_id\", '') IS NULL AND t.\"oauth_refresh_token\" IS NOT NULL)))";
  const encrypted =
    "((NOT NULLIF(t.\"oauth_access_token_key_id\", '') IS NULL) OR (NOT NULLIF(t.\"oauth_refresh_token_key_id\", '') IS NULL))";
  const orderBy = ' ORDER BY t."user_id", t."login_type"';

  it("selects the first batch not under a key", () => {
    const statement = selectBatchSql(userLinks, { kind: "not-under-key", keyId: "6c8d043" }, undefined, 500);
    expect(statement.text).toBe(`${select}${notUnderKey}${orderBy} LIMIT $2`);
    expect(statement.values).toEqual(["6c8d043", 500]);
  });

  it("selects the next batch after a cursor, casting each key part to its type", () => {
    const statement = selectBatchSql(userLinks, { kind: "not-under-key", keyId: "6c8d043" }, ["0b4e-uuid", "github"], 500);
    expect(statement.text).toBe(
      `${select}(t."user_id", t."login_type") > ($2::uuid, $3::login_type) AND ${notUnderKey}${orderBy} LIMIT $4`,
    );
    expect(statement.values).toEqual(["6c8d043", "0b4e-uuid", "github", 500]);
  });

  it("selects encrypted rows (decrypt/delete) without a key parameter", () => {
    const statement = selectBatchSql(userLinks, { kind: "encrypted" }, undefined, 1000);
    expect(statement.text).toBe(`${select}${encrypted}${orderBy} LIMIT $1`);
    expect(statement.values).toEqual([1000]);
  });

  it("selects encrypted rows after a cursor", () => {
    const statement = selectBatchSql(userLinks, { kind: "encrypted" }, ["u", "oidc"], 10);
    expect(statement.text).toBe(`${select}(t."user_id", t."login_type") > ($1::uuid, $2::login_type) AND ${encrypted}${orderBy} LIMIT $3`);
    expect(statement.values).toEqual(["u", "oidc", 10]);
  });

  it("updates with compare-and-swap on every value and key id", () => {
    const rowKeys = [["u1", "u2"], ["github", "oidc"]];
    const expected = [["a1", "a2"], ["k", "k"], ["r1", "r2"], [null, "k"]];
    const next = [["A1", "A2"], ["n", "n"], ["R1", "R2"], ["n", "n"]];
    const statement = updateBatchSql(userLinks, rowKeys, expected, next);
    expect(statement.text).toBe(
      'UPDATE "public"."user_links" AS t SET ' +
        '"oauth_access_token" = v.nv0, "oauth_access_token_key_id" = v.nk0, ' +
        '"oauth_refresh_token" = v.nv1, "oauth_refresh_token_key_id" = v.nk1 ' +
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) " +
        "AS v(k0, k1, ov0, ok0, ov1, ok1, nv0, nk0, nv1, nk1) " +
        'WHERE t."user_id" = v.k0::uuid AND t."login_type" = v.k1::login_type AND ' +
        't."oauth_access_token" IS NOT DISTINCT FROM v.ov0 AND t."oauth_access_token_key_id" IS NOT DISTINCT FROM v.ok0 AND ' +
        't."oauth_refresh_token" IS NOT DISTINCT FROM v.ov1 AND t."oauth_refresh_token_key_id" IS NOT DISTINCT FROM v.ok1 ' +
        'RETURNING t."user_id"::text, t."login_type"::text',
    );
    expect(statement.values).toEqual([...rowKeys, ...expected, ...next]);
  });

  it("deletes whole rows that still hold an encrypted value", () => {
    const statement = deleteBatchSql(userLinks, [["u1", "u2"], ["github", "oidc"]]);
    expect(statement.text).toBe(
      'DELETE FROM "public"."user_links" AS t USING unnest($1::text[], $2::text[]) AS v(k0, k1) ' +
        `WHERE t."user_id" = v.k0::uuid AND t."login_type" = v.k1::login_type AND ${encrypted}`,
    );
    expect(statement.values).toEqual([["u1", "u2"], ["github", "oidc"]]);
  });
});

describe("PostgreSQL clear and census (workspace_secrets)", () => {
  it("clears encrypted values to their clearTo, nulls the key id and stamps the timestamp columns", () => {
    const statement = deleteBatchSql(workspaceSecrets, [["id1", "id2"]]);
    expect(statement.text).toBe(
      'UPDATE "public"."workspace_secrets" AS t SET ' +
        "\"value\" = CASE WHEN NULLIF(t.\"value_key_id\", '') IS NULL THEN t.\"value\" ELSE $2::text END, " +
        "\"value_key_id\" = CASE WHEN NULLIF(t.\"value_key_id\", '') IS NULL THEN t.\"value_key_id\" ELSE NULL END, " +
        '"cleared_at" = CURRENT_TIMESTAMP ' +
        "FROM unnest($1::text[]) AS v(k0) " +
        "WHERE t.\"id\" = v.k0::uuid AND ((NOT NULLIF(t.\"value_key_id\", '') IS NULL))",
    );
    expect(statement.values).toEqual([["id1", "id2"], null]);
  });

  it("passes a string clearTo as a parameter, never inline", () => {
    const statement = deleteBatchSql({ ...workspaceSecrets, columns: [column("value", { clearTo: "{}'; DROP" })], deletePolicy: { action: "clear", setTimestampColumns: [] } }, [["x"]]);
    expect(statement.values).toEqual([["x"], "{}'; DROP"]);
    expect(statement.text).not.toContain("DROP");
    expect(statement.text).not.toContain("cleared_at");
  });

  it("counts per key id with a bare grouped count", () => {
    expect(censusByKeySql(workspaceSecrets, workspaceSecrets.columns[0] as EncryptedColumn)).toEqual({
      text: 'SELECT t."value_key_id" AS key_id, count(*) AS rows FROM "public"."workspace_secrets" AS t GROUP BY 1',
      values: [],
    });
  });

  it("breaks down only the plaintext rows", () => {
    const statement = censusSql(workspaceSecrets, workspaceSecrets.columns[0] as EncryptedColumn);
    const trimmed = /btrim\(t\."value", (E'[^']*')\)/.exec(statement.text)?.[1];
    expect(trimmed).toBeDefined();
    const ws = trimmed as string;
    expect(statement.text).toBe(
      "SELECT count(*) AS rows, " +
        'count(*) FILTER (WHERE t."value" IS NULL) AS nulls, ' +
        "count(*) FILTER (WHERE t.\"value\" = '') AS empties, " +
        `count(*) FILTER (WHERE btrim(t."value", ${ws}) = '') AS blanks, ` +
        `count(*) FILTER (WHERE btrim(t."value", ${ws}) = '{}') AS empty_objects ` +
        'FROM "public"."workspace_secrets" AS t WHERE NULLIF(t."value_key_id", \'\') IS NULL',
    );
    expect(statement.values).toEqual([]);
  });

  it("trims exactly space, tab, LF, CR, VT and FF in the census (the set isBlank uses)", () => {
    const statement = censusSql(workspaceSecrets, workspaceSecrets.columns[0] as EncryptedColumn);
    const literal = /btrim\(t\."value", E'([^']*)'\)/.exec(statement.text)?.[1] as string;
    // Decode the escape string the way the PostgreSQL used here (17) does, \v included.
    const decoded = literal.replace(/\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)/g, (_match, escape: string) => {
      const simple: Record<string, string> = { t: "\t", n: "\n", r: "\r", f: "\f", v: "\v", b: "\b" };
      if (escape.startsWith("x")) return String.fromCharCode(parseInt(escape.slice(1), 16));
      if (/^[0-7]+$/.test(escape)) return String.fromCharCode(parseInt(escape, 8));
      return simple[escape] ?? escape;
    });
    expect([...decoded].sort()).toEqual([..." \t\n\r\v\f"].sort());
  });
});

describe("PostgreSQL portability", () => {
  // PostgreSQL's documented E'' escapes are \b \f \n \r \t, octal, \x and \u; "any other
  // character following a backslash is taken literally". PostgreSQL 17 does read \v as VT, but a
  // server that does not would trim the letter 'v' instead, so the census would count "v" as blank.
  // \x0B (or \013) means VT on every version.
  it("the census whitespace literal uses only escapes every PostgreSQL version documents", () => {
    const text = censusSql(workspaceSecrets, workspaceSecrets.columns[0] as EncryptedColumn).text;
    const literal = /btrim\(t\."value", E'([^']*)'\)/.exec(text)?.[1] as string;
    expect(literal).not.toMatch(/\\v/);
  });
});

describe("PostgreSQL builders with hostile identifiers", () => {
  const statements = () => [
    selectBatchSql(hostile, { kind: "not-under-key", keyId: "6c8d043" }, [1, "x"], 5).text,
    selectBatchSql(hostile, { kind: "encrypted" }, undefined, 5).text,
    updateBatchSql(hostile, [["1"], ["x"]], [["a"], ["k"], ["b"], ["k"]], [["c"], ["n"], ["d"], ["n"]]).text,
    deleteBatchSql(hostile, [["1"], ["x"]]).text,
    deleteBatchSql({ ...hostile, deletePolicy: { action: "delete-row" } }, [["1"], ["x"]]).text,
    censusSql(hostile, hostile.columns[0] as EncryptedColumn).text,
    censusSql(hostile, hostile.columns[1] as EncryptedColumn).text,
  ];

  it("leaves no fragment of any identifier outside a quoted identifier", () => {
    for (const sql of statements()) {
      const bare = skeleton(sql);
      expect(bare).not.toMatch(/DROP|;|--|ключ|🔑|Schema|Sec|UPPER|Cleared|Id Col/);
      expect(bare).toMatch(/^[A-Za-z0-9_$:.,()<>=*!\[\] {}<>]*$/u);
    }
  });

  it("quotes each identifier as one unit, with embedded quotes doubled", () => {
    const select = selectBatchSql(hostile, { kind: "encrypted" }, undefined, 5).text;
    expect(select).toContain('FROM "My ""Schema"""."we""ird; DROP TABLE users; --" AS t');
    expect(select).toContain('t."Id Col"::text, t."ключ"::text, t."Sec""ret", t."Sec""ret_key_id", t."UPPER Case 🔑", t."UPPER Case 🔑_key_id"');
    expect(select).toContain('ORDER BY t."Id Col", t."ключ" LIMIT $1');
    const names = new Set(quotedIdentifiers(select));
    for (const name of [HOSTILE.schema, HOSTILE.table, HOSTILE.key1, HOSTILE.key2, HOSTILE.value1, HOSTILE.keyId1, HOSTILE.value2, HOSTILE.keyId2]) {
      expect(names.has(name)).toBe(true);
    }
  });

  it("quotes timestamp columns in a clear", () => {
    const clear = deleteBatchSql(hostile, [["1"], ["x"]]);
    expect(clear.text).toContain(`"Cleared At'); --" = CURRENT_TIMESTAMP`);
    expect(clear.values).toEqual([["1"], ["x"], "", null]);
  });

  it("quotes arbitrary generated identifiers everywhere (both dialects)", () => {
    const name = fc.string({ unit: "binary", minLength: 1, maxLength: 12 });
    fc.assert(
      fc.property(fc.tuple(name, name, name, name, name), ([schema, table, key, value, stamp]) => {
        const table1: EncryptedTable = {
          ref: { schema, name: table },
          rowKey: [key],
          rowKeyTypes: ["text"],
          columns: [column(value)],
          context: [],
          deletePolicy: { action: "clear", setTimestampColumns: [stamp] },
        };
        const everywhere = [schema, table, value, `${value}_key_id`];
        const cases: [string, string[]][] = [
          [selectBatchSql(table1, { kind: "not-under-key", keyId: "1234567" }, ["a"], 1).text, [...everywhere, key]],
          [updateBatchSql(table1, [["a"]], [["b"], ["c"]], [["d"], ["e"]]).text, [...everywhere, key]],
          [deleteBatchSql(table1, [["a"]]).text, [...everywhere, key, stamp]],
          [censusSql(table1, table1.columns[0] as EncryptedColumn).text, everywhere],
          [selectBatchSqlite(table1, { kind: "not-under-key", keyId: "1234567" }, true), [table, value, `${value}_key_id`, key]],
          [updateRowSqlite(table1), [table, value, `${value}_key_id`, key]],
          [deleteRowSqlite(table1), [table, value, `${value}_key_id`, key, stamp]],
          [censusSqlite(table1, table1.columns[0] as EncryptedColumn), [table, value, `${value}_key_id`]],
        ];
        for (const [sql, expected] of cases) {
          const identifiers = new Set(quotedIdentifiers(sql));
          for (const identifier of expected) expect(identifiers.has(identifier)).toBe(true);
          expect(skeleton(sql)).not.toContain('"');
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("SQLite builders", () => {
  const sqliteLinks: EncryptedTable = { ...userLinks, ref: { schema: undefined, name: "user_links" }, rowKeyTypes: ["TEXT", "TEXT"] };
  const notUnderKey =
    "(((\"oauth_access_token_key_id\" <> :target AND \"oauth_access_token_key_id\" <> '') OR " +
    "(NULLIF(\"oauth_access_token_key_id\", '') IS NULL AND \"oauth_access_token\" IS NOT NULL)) OR " +
    "((\"oauth_refresh_token_key_id\" <> :target AND \"oauth_refresh_token_key_id\" <> '') OR " +
    "(NULLIF(\"oauth_refresh_token_key_id\", '') IS NULL AND \"oauth_refresh_token\" IS NOT NULL)))";
  const encrypted =
    "((NULLIF(\"oauth_access_token_key_id\", '') IS NOT NULL) OR (NULLIF(\"oauth_refresh_token_key_id\", '') IS NOT NULL))";
  const select =
    'SELECT "user_id", "login_type", "oauth_access_token", "oauth_access_token_key_id", "oauth_refresh_token", "oauth_refresh_token_key_id" FROM "user_links" AS t WHERE ';

  it("selects the first batch not under a key", () => {
    expect(selectBatchSqlite(sqliteLinks, { kind: "not-under-key", keyId: "x" }, false)).toBe(
      `${select}${notUnderKey} ORDER BY "user_id", "login_type" LIMIT :limit`,
    );
  });

  it("selects after a row-value cursor", () => {
    expect(selectBatchSqlite(sqliteLinks, { kind: "not-under-key", keyId: "x" }, true)).toBe(
      `${select}("user_id", "login_type") > (:k0, :k1) AND ${notUnderKey} ORDER BY "user_id", "login_type" LIMIT :limit`,
    );
  });

  it("selects encrypted rows", () => {
    expect(selectBatchSqlite(sqliteLinks, { kind: "encrypted" }, true)).toBe(
      `${select}("user_id", "login_type") > (:k0, :k1) AND ${encrypted} ORDER BY "user_id", "login_type" LIMIT :limit`,
    );
  });

  it("updates one row with null-safe compare-and-swap", () => {
    expect(updateRowSqlite(sqliteLinks)).toBe(
      'UPDATE "user_links" SET "oauth_access_token" = :nv0, "oauth_access_token_key_id" = :nk0, ' +
        '"oauth_refresh_token" = :nv1, "oauth_refresh_token_key_id" = :nk1 ' +
        'WHERE "user_id" = :k0 AND "login_type" = :k1 AND ' +
        '"oauth_access_token" IS :ov0 AND "oauth_access_token_key_id" IS :ok0 AND ' +
        '"oauth_refresh_token" IS :ov1 AND "oauth_refresh_token_key_id" IS :ok1',
    );
  });

  it("deletes a row that still holds an encrypted value", () => {
    expect(deleteRowSqlite(sqliteLinks)).toBe(`DELETE FROM "user_links" WHERE "user_id" = :k0 AND "login_type" = :k1 AND ${encrypted}`);
  });

  it("clears with per-column parameters and timestamp columns", () => {
    const table: EncryptedTable = { ...sqliteLinks, deletePolicy: { action: "clear", setTimestampColumns: ["cleared_at", "updated_at"] } };
    expect(deleteRowSqlite(table)).toBe(
      'UPDATE "user_links" SET ' +
        "\"oauth_access_token\" = CASE WHEN NULLIF(\"oauth_access_token_key_id\", '') IS NULL THEN \"oauth_access_token\" ELSE :c0 END, " +
        "\"oauth_access_token_key_id\" = CASE WHEN NULLIF(\"oauth_access_token_key_id\", '') IS NULL THEN \"oauth_access_token_key_id\" ELSE NULL END, " +
        "\"oauth_refresh_token\" = CASE WHEN NULLIF(\"oauth_refresh_token_key_id\", '') IS NULL THEN \"oauth_refresh_token\" ELSE :c1 END, " +
        "\"oauth_refresh_token_key_id\" = CASE WHEN NULLIF(\"oauth_refresh_token_key_id\", '') IS NULL THEN \"oauth_refresh_token_key_id\" ELSE NULL END, " +
        '"cleared_at" = CURRENT_TIMESTAMP, "updated_at" = CURRENT_TIMESTAMP ' +
        `WHERE "user_id" = :k0 AND "login_type" = :k1 AND ${encrypted}`,
    );
  });

  it("ignores the schema (one namespace per file)", () => {
    expect(deleteRowSqlite(sqliteGitsshkeys)).toBe(
      'UPDATE "gitsshkeys" SET ' +
        "\"private_key\" = CASE WHEN NULLIF(\"private_key_key_id\", '') IS NULL THEN \"private_key\" ELSE :c0 END, " +
        "\"private_key_key_id\" = CASE WHEN NULLIF(\"private_key_key_id\", '') IS NULL THEN \"private_key_key_id\" ELSE NULL END " +
        "WHERE \"user_id\" = :k0 AND ((NULLIF(\"private_key_key_id\", '') IS NOT NULL))",
    );
    expect(updateRowSqlite({ ...sqliteGitsshkeys, ref: { schema: "main", name: "gitsshkeys" } })).toContain('UPDATE "gitsshkeys" SET');
  });

  it("counts per key id, then breaks down plaintext trimming ASCII whitespace by code point", () => {
    expect(censusByKeySqlite(sqliteGitsshkeys, sqliteGitsshkeys.columns[0] as EncryptedColumn)).toBe(
      'SELECT "private_key_key_id" AS key_id, count(*) AS rows FROM "gitsshkeys" GROUP BY 1',
    );
    expect(censusSqlite(sqliteGitsshkeys, sqliteGitsshkeys.columns[0] as EncryptedColumn)).toBe(
      "SELECT count(*) AS rows, " +
        'coalesce(sum("private_key" IS NULL), 0) AS nulls, ' +
        "coalesce(sum(\"private_key\" = ''), 0) AS empties, " +
        "coalesce(sum(trim(\"private_key\", char(32, 9, 10, 13, 11, 12)) = ''), 0) AS blanks, " +
        "coalesce(sum(trim(\"private_key\", char(32, 9, 10, 13, 11, 12)) = '{}'), 0) AS empty_objects " +
        "FROM \"gitsshkeys\" WHERE NULLIF(\"private_key_key_id\", '') IS NULL",
    );
  });

  it("quotes hostile identifiers in every statement", () => {
    for (const sql of [
      selectBatchSqlite(hostile, { kind: "not-under-key", keyId: "x" }, true),
      selectBatchSqlite(hostile, { kind: "encrypted" }, false),
      updateRowSqlite(hostile),
      deleteRowSqlite(hostile),
      deleteRowSqlite({ ...hostile, deletePolicy: { action: "delete-row" } }),
      censusSqlite(hostile, hostile.columns[1] as EncryptedColumn),
    ]) {
      const bare = skeleton(sql);
      expect(bare).not.toMatch(/DROP|;|--|ключ|🔑|Schema|Sec|UPPER|Cleared|Id Col/);
      expect(bare).toMatch(/^[A-Za-z0-9_:.,()<>=*!\[\] {}<>]*$/u);
      expect(sql).not.toContain("My");
    }
    expect(updateRowSqlite(hostile)).toContain('"Sec""ret" = :nv0, "Sec""ret_key_id" = :nk0, "UPPER Case 🔑" = :nv1');
    expect(deleteRowSqlite(hostile)).toContain(`"Cleared At'); --" = CURRENT_TIMESTAMP`);
  });
});

describe("keys-table statements", () => {
  it("selects all keys in number order", () => {
    expect(KEY_COLUMNS).toBe("number, active_key_digest, revoked_key_digest, created_at, revoked_at, test");
    expect(selectKeysSql("dbcrypt_keys")).toBe(`SELECT ${KEY_COLUMNS} FROM "dbcrypt_keys" ORDER BY number ASC`);
  });

  it("finds a key by digest whether active or revoked", () => {
    expect(selectKeyByDigestSql("dbcrypt_keys", postgresPlaceholder)).toBe(
      `SELECT ${KEY_COLUMNS} FROM "dbcrypt_keys" WHERE active_key_digest = $1 OR revoked_key_digest = $1`,
    );
    expect(selectKeyByDigestSql("dbcrypt_keys", sqlitePlaceholder)).toBe(
      `SELECT ${KEY_COLUMNS} FROM "dbcrypt_keys" WHERE active_key_digest = :p1 OR revoked_key_digest = :p1`,
    );
  });

  it("inserts with number = max(number over all rows) + 1, as Coder does", () => {
    expect(insertKeySql("dbcrypt_keys", postgresPlaceholder)).toBe(
      'INSERT INTO "dbcrypt_keys" (number, active_key_digest, created_at, test) ' +
        'SELECT COALESCE(MAX(number), 0) + 1, $1, CURRENT_TIMESTAMP, $2 FROM "dbcrypt_keys"',
    );
    expect(insertKeySql("dbcrypt_keys", sqlitePlaceholder)).toContain("COALESCE(MAX(number), 0) + 1, :p1, CURRENT_TIMESTAMP, :p2");
  });

  it("revokes with Coder's swap on the active row only", () => {
    expect(revokeKeySql("dbcrypt_keys", postgresPlaceholder)).toBe(
      'UPDATE "dbcrypt_keys" SET revoked_key_digest = active_key_digest, active_key_digest = revoked_key_digest, ' +
        "revoked_at = CURRENT_TIMESTAMP WHERE active_key_digest = $1 AND revoked_key_digest IS NULL",
    );
    expect(revokeKeySql("dbcrypt_keys", sqlitePlaceholder)).toMatch(/WHERE active_key_digest = :p1 AND revoked_key_digest IS NULL$/);
  });

  it("creates the table with Coder's columns", () => {
    const [create, ...comments] = createKeysTablePostgresSql("dbcrypt_keys");
    expect(create).toBe(
      'CREATE TABLE "dbcrypt_keys" (number integer NOT NULL PRIMARY KEY, active_key_digest text UNIQUE, ' +
        "revoked_key_digest text UNIQUE, created_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP, " +
        "revoked_at timestamp with time zone, test text NOT NULL)",
    );
    expect(comments).toContain(`COMMENT ON TABLE "dbcrypt_keys" IS 'A table used to store the keys used to encrypt the database.'`);
    expect(comments).toContain(`COMMENT ON COLUMN "dbcrypt_keys".test IS 'A column used to test the encryption.'`);
    expect(createKeysTableSqliteSql("dbcrypt_keys")).toEqual([
      'CREATE TABLE "dbcrypt_keys" (number INTEGER NOT NULL PRIMARY KEY, active_key_digest TEXT UNIQUE, ' +
        "revoked_key_digest TEXT UNIQUE, created_at TEXT DEFAULT CURRENT_TIMESTAMP, revoked_at TEXT, test TEXT NOT NULL)",
    ]);
  });

  it("quotes a hostile keys-table name in every statement", () => {
    const name = 'keys"; DROP TABLE x; --';
    for (const sql of [
      selectKeysSql(name),
      selectKeyByDigestSql(name, postgresPlaceholder),
      insertKeySql(name, postgresPlaceholder),
      revokeKeySql(name, sqlitePlaceholder),
      ...createKeysTablePostgresSql(name),
      ...createKeysTableSqliteSql(name),
    ]) {
      expect(sql).toContain('"keys""; DROP TABLE x; --"');
      expect(skeleton(sql)).not.toMatch(/DROP|;|--/);
    }
  });
});

describe("PostgreSQL compare-and-swap on the row version", () => {
  it("sends only the new values and the xmin read, and matches on both the key and xmin", () => {
    const table = {
      ref: { schema: "public", name: "user_links" },
      rowKey: ["user_id", "login_type"],
      rowKeyTypes: ["uuid", "login_type"],
      columns: [{ column: "oauth_access_token", keyIdColumn: "oauth_access_token_key_id", keepPlaintext: "never" as const, clearTo: "", source: "foreign-key" as const }],
      context: [],
      deletePolicy: { action: "delete-row" as const },
    };
    const statement = updateBatchByVersionSql(table, [["u1"], ["github"]], ["123"], [["ct"], ["abc1234"]]);
    expect(statement.text).toBe(
      'UPDATE "public"."user_links" AS t SET "oauth_access_token" = v.nv0, "oauth_access_token_key_id" = v.nk0 ' +
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS v(k0, k1, ver, nv0, nk0) " +
        'WHERE t."user_id" = v.k0::uuid AND t."login_type" = v.k1::login_type AND t.xmin = v.ver::xid ' +
        'RETURNING t."user_id"::text, t."login_type"::text',
    );
    expect(statement.values).toEqual([["u1"], ["github"], ["123"], ["ct"], ["abc1234"]]);
  });
});

/** A scheme that keeps key ids inside the values: the column has no key-id column. */
const notesInValue: EncryptedTable = {
  ref: { schema: "public", name: "notes" },
  rowKey: ["id"],
  rowKeyTypes: ["integer"],
  columns: [column("secret", { keyIdColumn: undefined })],
  context: [],
  deletePolicy: { action: "delete-row" },
};

describe("builders for a column whose key id is inside the value", () => {
  it("PostgreSQL reads every non-NULL value as a candidate, with a NULL key id and no key parameter", () => {
    const statement = selectBatchSql(notesInValue, { kind: "not-under-key", keyId: "abc1234" }, undefined, 10);
    expect(statement.text).toBe('SELECT t."id"::text, t."secret", NULL::text, t.xmin::text FROM "public"."notes" AS t WHERE ((t."secret" IS NOT NULL)) ORDER BY t."id" LIMIT $1');
    expect(statement.values).toEqual([10]);
    expect(selectBatchSql(notesInValue, { kind: "all" }, undefined, 10).text).toContain("WHERE (TRUE)");
  });

  it("PostgreSQL writes and compares the value alone", () => {
    const statement = updateBatchSql(notesInValue, [["1"]], [["old"], [null]], [["new"], ["abc1234"]]);
    expect(statement.text).toContain('SET "secret" = v.nv0 FROM');
    expect(statement.text).toContain('t."secret" IS NOT DISTINCT FROM v.ov0');
    expect(statement.text).not.toContain("key_id");
  });

  it("SQLite reads, writes and compares the value alone", () => {
    expect(selectBatchSqlite(notesInValue, { kind: "encrypted" }, false)).toBe('SELECT "id", "secret", NULL FROM "notes" AS t WHERE (("secret" IS NOT NULL)) ORDER BY "id" LIMIT :limit');
    expect(updateRowSqlite(notesInValue)).toBe('UPDATE "notes" SET "secret" = :nv0 WHERE "id" = :k0 AND "secret" IS :ov0');
  });

  it("deletes a row only if it is unchanged since it was read (SQL cannot re-check the value)", () => {
    const statement = deleteBatchSql(notesInValue, [["1", "2"]], ["100", "101"]);
    expect(statement.text).toBe('DELETE FROM "public"."notes" AS t USING unnest($1::text[], $2::text[]) AS v(k0, ver) WHERE t."id" = v.k0::integer AND t.xmin = v.ver::xid AND ((t."secret" IS NOT NULL))');
    expect(statement.values).toEqual([["1", "2"], ["100", "101"]]);
    expect(() => deleteBatchSql(notesInValue, [["1"]])).toThrow(/row versions/);
    expect(deleteRowSqlite(notesInValue)).toBe('DELETE FROM "notes" WHERE "id" = :k0 AND (("secret" IS NOT NULL)) AND "secret" IS :ov0');
  });

  it("has no census or clear SQL: those need a key-id column", () => {
    expect(() => censusByKeySql(notesInValue, notesInValue.columns[0]!)).toThrow(/no key-id column/);
    expect(() => censusSqlite(notesInValue, notesInValue.columns[0]!)).toThrow(/no key-id column/);
  });
});

describe("--partition", () => {
  it("reads I/N with 0 <= I < N <= 1024, and nothing else", () => {
    expect(partitionFromText("0/3")).toEqual({ index: 0, count: 3 });
    expect(partitionFromText("1023/1024")).toEqual({ index: 1023, count: 1024 });
    for (const bad of ["3/3", "0/0", "1", "-1/2", "a/b", "0/1025", " 0/2", "0/2 "]) expect(partitionFromText(bad), bad).toBeUndefined();
  });

  it("adds the part's hash test to a PostgreSQL batch read, over the whole composite key", () => {
    const { text } = selectBatchSql(userLinks, { kind: "encrypted", partition: { index: 1, count: 3 } }, undefined, 100);
    expect(text).toContain(`(abs(mod(hashtextextended(concat_ws(E'\\x1f', t."user_id"::text, t."login_type"::text), 0), 3)) = 1)`);
    const single = selectBatchSql(workspaceSecrets, { kind: "encrypted", partition: { index: 0, count: 2 } }, undefined, 100).text;
    expect(single).toContain(`(abs(mod(hashtextextended(t."id"::text, 0), 2)) = 0)`);
    expect(selectBatchSql(workspaceSecrets, { kind: "encrypted" }, undefined, 100).text).not.toContain("hashtextextended");
  });

  it("adds the part's function test to a SQLite batch read", () => {
    expect(selectBatchSqlite(sqliteGitsshkeys, { kind: "encrypted", partition: { index: 2, count: 4 } }, false)).toContain(`(dbcrypt_partition(4, "user_id") = 2)`);
  });

  it("gives SQLite rows a stable part in range, spread over every part", () => {
    const counts = [0, 0, 0];
    for (let row = 0; row < 3000; row++) {
      const part = sqlitePartitionOf(3, [`secret-${row}`]);
      expect(sqlitePartitionOf(3, [`secret-${row}`])).toBe(part);
      counts[part] = (counts[part] ?? 0) + 1;
    }
    for (const count of counts) expect(count).toBeGreaterThan(800);
    expect(sqlitePartitionOf(7, [12n, "a"])).toBe(sqlitePartitionOf(7, [12n, "a"]));
  });
});
