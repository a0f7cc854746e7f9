/**
 * planSchema over hand-built catalogs: foreign-key discovery, the naming-rule fallback, row keys,
 * config overrides, and the Coder preset (blank rules and delete policies, including the tables
 * Coder's own CLI forgets).
 */
import { describe, expect, it } from "vitest";
import { DbcryptError } from "../../src/errors.js";
import { CODER_MARKER_TABLES, CODER_PRESET } from "../../src/schema/coder-preset.js";
import type { DbcryptConfig } from "../../src/schema/config-file.js";
import { planSchema } from "../../src/schema/discover.js";
import { staysPlaintext } from "../../src/schema/plaintext-rule.js";
import { tableLabel, type CatalogColumn, type CatalogTable, type EncryptedTable, type SchemaPlan } from "../../src/schema/model.js";
import { coderScheme } from "../../src/crypto/schemes/coder-aes256gcm.js";

const KEYS = "dbcrypt_keys";

type ColumnSpec = string | [name: string, type: string, options?: { nullable?: boolean }];

function columnOf(spec: ColumnSpec): CatalogColumn {
  const [name, dataType, options] = typeof spec === "string" ? [spec, "text", {}] : spec;
  return { name, dataType, isText: /^(text|character varying.*|varchar.*|TEXT)$/.test(dataType), nullable: options?.nullable ?? true };
}

interface TableSpec {
  schema?: string;
  columns: ColumnSpec[];
  primaryKey?: string[];
  unique?: string[][];
  /** Key-id columns with a FK to dbcrypt_keys(active_key_digest). */
  fks?: string[];
}

function table(name: string, spec: TableSpec): CatalogTable {
  return {
    schema: spec.schema ?? "public",
    name,
    columns: spec.columns.map(columnOf),
    primaryKey: spec.primaryKey,
    uniqueNotNullKeys: spec.unique ?? [],
    keysTableForeignKeys: (spec.fks ?? []).map((column) => ({ column, constraint: `${name}_${column}_fkey` })),
  };
}

const notNull = (name: string, type = "text"): ColumnSpec => [name, type, { nullable: false }];

const keysTable = table(KEYS, {
  columns: [notNull("number", "integer"), "active_key_digest", "revoked_key_digest", ["created_at", "timestamp with time zone"], ["revoked_at", "timestamp with time zone"], notNull("test")],
  primaryKey: ["number"],
  unique: [],
});

/** Every encrypted Coder table of reference §3.1, with the nullability it has on main. */
function coderCatalog(): CatalogTable[] {
  return [
    keysTable,
    table("users", { columns: [notNull("id", "uuid"), notNull("email")], primaryKey: ["id"] }),
    table("user_links", {
      columns: [notNull("user_id", "uuid"), notNull("login_type", "login_type"), notNull("oauth_access_token"), "oauth_access_token_key_id", notNull("oauth_refresh_token"), "oauth_refresh_token_key_id"],
      primaryKey: ["user_id", "login_type"],
      fks: ["oauth_access_token_key_id", "oauth_refresh_token_key_id"],
    }),
    table("external_auth_links", {
      columns: [notNull("provider_id"), notNull("user_id", "uuid"), notNull("oauth_access_token"), "oauth_access_token_key_id", notNull("oauth_refresh_token"), "oauth_refresh_token_key_id", ["updated_at", "timestamp with time zone"]],
      primaryKey: ["provider_id", "user_id"],
      fks: ["oauth_access_token_key_id", "oauth_refresh_token_key_id"],
    }),
    table("crypto_keys", {
      columns: [notNull("feature", "crypto_key_feature"), notNull("sequence", "integer"), "secret", "secret_key_id"],
      primaryKey: ["feature", "sequence"],
      fks: ["secret_key_id"],
    }),
    table("user_secrets", { columns: [notNull("id", "uuid"), notNull("value"), "value_key_id"], primaryKey: ["id"], fks: ["value_key_id"] }),
    table("gitsshkeys", { columns: [notNull("user_id", "uuid"), notNull("private_key"), "private_key_key_id", notNull("public_key")], primaryKey: ["user_id"], fks: ["private_key_key_id"] }),
    table("ai_providers", { columns: [notNull("id", "uuid"), "settings", "settings_key_id"], primaryKey: ["id"], fks: ["settings_key_id"] }),
    table("ai_provider_keys", { columns: [notNull("id", "uuid"), "api_key", "api_key_key_id"], primaryKey: ["id"], fks: ["api_key_key_id"] }),
    table("user_ai_provider_keys", { columns: [notNull("id", "uuid"), notNull("api_key"), "api_key_key_id"], primaryKey: ["id"], fks: ["api_key_key_id"] }),
    table("mcp_server_configs", {
      columns: [
        notNull("id", "uuid"),
        notNull("oauth2_client_secret"), "oauth2_client_secret_key_id",
        notNull("api_key_value"), "api_key_value_key_id",
        notNull("custom_headers"), "custom_headers_key_id",
        notNull("signing_secret"), "signing_secret_key_id",
      ],
      primaryKey: ["id"],
      fks: ["oauth2_client_secret_key_id", "api_key_value_key_id", "custom_headers_key_id", "signing_secret_key_id"],
    }),
    table("mcp_server_user_tokens", {
      columns: [notNull("id", "uuid"), notNull("access_token"), "access_token_key_id", notNull("refresh_token"), "refresh_token_key_id"],
      primaryKey: ["id"],
      fks: ["access_token_key_id", "refresh_token_key_id"],
    }),
    table("chat_mcp_servers", { columns: [notNull("id", "uuid"), notNull("headers"), "headers_key_id"], primaryKey: ["id"], fks: ["headers_key_id"] }),
    table("workspace_secrets", {
      columns: [notNull("id", "uuid"), "value", "value_key_id", ["cleared_at", "timestamp with time zone"]],
      primaryKey: ["id"],
      fks: ["value_key_id"],
    }),
  ];
}

/** The chat-provider era and newer tables (chat_providers, user_chat_provider_keys, chat_automation_triggers). */
function coderChatTables(): CatalogTable[] {
  return [
    table("chat_providers", { columns: [notNull("id", "uuid"), notNull("provider"), notNull("api_key"), "api_key_key_id"], primaryKey: ["id"], fks: ["api_key_key_id"] }),
    table("user_chat_provider_keys", { columns: [notNull("id", "uuid"), notNull("api_key"), "api_key_key_id"], primaryKey: ["id"], fks: ["api_key_key_id"] }),
    table("chat_automation_triggers", {
      columns: [notNull("id", "uuid"), notNull("type", "chat_automation_trigger_type"), "webhook_secret", "webhook_secret_key_id"],
      primaryKey: ["id"],
      fks: ["webhook_secret_key_id"],
    }),
  ];
}

function byName(plan: SchemaPlan, name: string): EncryptedTable {
  const found = plan.tables.find((candidate) => candidate.ref.name === name);
  if (found === undefined) throw new Error(`table ${name} is not in the plan`);
  return found;
}

function planError(catalog: CatalogTable[], config: DbcryptConfig): DbcryptError {
  try {
    planSchema(catalog, config, KEYS);
  } catch (error) {
    expect(error).toBeInstanceOf(DbcryptError);
    return error as DbcryptError;
  }
  throw new Error("expected planSchema to throw");
}

describe("foreign-key discovery", () => {
  it("finds every <col>/<col>_key_id pair with a FK to the keys table", () => {
    const plan = planSchema(
      [keysTable, table("things", { columns: [notNull("id", "bigint"), "a", "a_key_id", "b", "b_key_id", "c"], primaryKey: ["id"], fks: ["a_key_id", "b_key_id"] })],
      {},
      KEYS,
    );
    expect(plan.preset).toBe("none");
    expect(plan.refused).toEqual([]);
    expect(plan.tables).toEqual([
      {
        ref: { schema: "public", name: "things" },
        rowKey: ["id"],
        rowKeyTypes: ["bigint"],
        columns: [
          { column: "a", keyIdColumn: "a_key_id", keepPlaintext: "never", clearTo: null, source: "foreign-key" },
          { column: "b", keyIdColumn: "b_key_id", keepPlaintext: "never", clearTo: null, source: "foreign-key" },
        ],
        deletePolicy: { action: "clear", setTimestampColumns: [] },
        context: [],
      },
    ]);
  });

  it("never treats the keys table as encrypted data", () => {
    const plan = planSchema([keysTable], {}, KEYS);
    expect(plan.tables).toEqual([]);
    // Even a keys table that looks like it has <col>_key_id pairs.
    const odd = table(KEYS, { columns: [notNull("number", "integer"), "x", "x_key_id"], primaryKey: ["number"] });
    expect(planSchema([odd], {}, KEYS).tables).toEqual([]);
  });

  it("uses the keys-table name it is given", () => {
    const custom = table("app_keys", { columns: [notNull("number", "integer"), "active_key_digest", "test"], primaryKey: ["number"] });
    const data = table("t", { columns: [notNull("id", "integer"), "v", "v_key_id"], primaryKey: ["id"], fks: ["v_key_id"] });
    expect(planSchema([custom, data], {}, "app_keys").tables.map((entry) => entry.ref.name)).toEqual(["t"]);
  });

  it("ignores a FK on a column that does not end in _key_id, or whose data column is missing or not text", () => {
    const plan = planSchema(
      [table("t", { columns: [notNull("id", "integer"), "digest", ["n", "integer"], "n_key_id", "orphan_key_id"], primaryKey: ["id"], fks: ["digest", "n_key_id", "orphan_key_id"] })],
      {},
      KEYS,
    );
    expect(plan.tables).toEqual([]);
  });

  it("sorts columns by name and keeps the table's schema", () => {
    const plan = planSchema(
      [table("t", { schema: "app", columns: [notNull("id", "integer"), "zeta", "zeta_key_id", "alpha", "alpha_key_id"], primaryKey: ["id"], fks: ["zeta_key_id", "alpha_key_id"] })],
      {},
      KEYS,
    );
    expect(plan.tables[0]?.ref).toEqual({ schema: "app", name: "t" });
    expect(plan.tables[0]?.columns.map((entry) => entry.column)).toEqual(["alpha", "zeta"]);
  });

  it("defaults clearTo to '' for NOT NULL columns and null for nullable ones", () => {
    const plan = planSchema([table("t", { columns: [notNull("id", "integer"), notNull("a"), "a_key_id", "b", "b_key_id"], primaryKey: ["id"], fks: ["a_key_id", "b_key_id"] })], {}, KEYS);
    expect(plan.tables[0]?.columns.map((entry) => [entry.column, entry.clearTo])).toEqual([["a", ""], ["b", null]]);
  });
});

describe("naming-rule fallback (no foreign keys)", () => {
  it("pairs <col> with a text <col>_key_id", () => {
    const plan = planSchema([table("t", { columns: [notNull("id", "integer"), "token", "token_key_id"], primaryKey: ["id"] })], {}, KEYS);
    expect(plan.tables[0]?.columns).toEqual([{ column: "token", keyIdColumn: "token_key_id", keepPlaintext: "never", clearTo: null, source: "naming-rule" }]);
  });

  it("needs both columns to be text", () => {
    const plan = planSchema(
      [
        table("t1", { columns: [notNull("id", "integer"), ["token", "bytea"], "token_key_id"], primaryKey: ["id"] }),
        table("t2", { columns: [notNull("id", "integer"), "token", ["token_key_id", "integer"]], primaryKey: ["id"] }),
        table("t3", { columns: [notNull("id", "integer"), "token_key_id"], primaryKey: ["id"] }),
      ],
      {},
      KEYS,
    );
    expect(plan.tables).toEqual([]);
  });

  it("prefers the FK pairing and adds naming-rule columns beside it", () => {
    const plan = planSchema(
      [table("t", { columns: [notNull("id", "integer"), "a", "a_key_id", "b", "b_key_id"], primaryKey: ["id"], fks: ["a_key_id"] })],
      {},
      KEYS,
    );
    expect(plan.tables[0]?.columns.map((entry) => [entry.column, entry.source])).toEqual([["a", "foreign-key"], ["b", "naming-rule"]]);
  });
});

describe("row keys", () => {
  const data = (spec: Partial<TableSpec>) =>
    table("t", { columns: [notNull("id", "uuid"), notNull("slug"), "maybe", "v", "v_key_id"], fks: ["v_key_id"], ...spec });

  it("uses the primary key with its column types", () => {
    const plan = planSchema([data({ primaryKey: ["id"] })], {}, KEYS);
    expect(plan.tables[0]?.rowKey).toEqual(["id"]);
    expect(plan.tables[0]?.rowKeyTypes).toEqual(["uuid"]);
  });

  it("falls back to the first unique NOT NULL key when there is no primary key", () => {
    const plan = planSchema([data({ primaryKey: undefined, unique: [["slug"], ["id"]] })], {}, KEYS);
    expect(plan.refused).toEqual([]);
    expect(plan.tables[0]?.rowKey).toEqual(["slug"]);
    expect(plan.tables[0]?.rowKeyTypes).toEqual(["text"]);
  });

  it("prefers a unique NOT NULL key over a primary key whose columns may hold NULL (SQLite)", () => {
    const sqliteTable = (unique: string[][]): CatalogTable => ({
      ...table("t", { columns: ["a", "b", notNull("handle"), "v", "v_key_id"], primaryKey: ["a", "b"], unique, fks: ["v_key_id"] }),
      schema: undefined,
    });
    const plan = planSchema([sqliteTable([["handle"]])], {}, KEYS);
    expect(plan.tables[0]?.rowKey).toEqual(["handle"]);
    // Without one, the nullable primary key is still the row key (the data decides whether it is usable).
    expect(planSchema([sqliteTable([])], {}, KEYS).tables[0]?.rowKey).toEqual(["a", "b"]);
    // A config rowKey still wins.
    expect(planSchema([sqliteTable([["handle"]])], { tables: { t: { rowKey: ["a", "b"] } } }, KEYS).tables[0]?.rowKey).toEqual(["a", "b"]);
  });

  it("refuses a table with neither, listing its encrypted columns", () => {
    const plan = planSchema([data({ primaryKey: undefined })], {}, KEYS);
    expect(plan.tables).toEqual([]);
    expect(plan.refused).toHaveLength(1);
    expect(plan.refused[0]?.ref).toMatchObject({ schema: "public", name: "t" });
    expect(plan.refused[0]?.columns).toEqual(["v"]);
    expect(plan.refused[0]?.reason).toMatch(/no primary key or unique NOT NULL key/);
  });

  it("does not refuse a table without a key when it has no encrypted columns", () => {
    const plan = planSchema([table("logs", { columns: ["line"] })], {}, KEYS);
    expect(plan).toEqual({ tables: [], refused: [], warnings: [], preset: "none", scheme: coderScheme });
  });

  it("takes a rowKey from the config over the primary key", () => {
    const plan = planSchema([data({ primaryKey: undefined })], { tables: { t: { rowKey: ["slug", "id"] } } }, KEYS);
    expect(plan.refused).toEqual([]);
    expect(plan.tables[0]?.rowKey).toEqual(["slug", "id"]);
    expect(plan.tables[0]?.rowKeyTypes).toEqual(["text", "uuid"]);
  });

  it("refuses a config rowKey naming a missing column", () => {
    const error = planError([data({ primaryKey: ["id"] })], { tables: { t: { rowKey: ["nope"] } } });
    expect(error.code).toBe("bad_config");
    expect(error.message).toBe("rowKey of t names column t.nope, which does not exist");
  });
});

describe("config overrides", () => {
  const base = () =>
    table("t", {
      columns: [notNull("id", "integer"), "a", "a_key_id", notNull("b"), "b_key_id", "c", "c_kid", ["updated_at", "timestamp with time zone"]],
      primaryKey: ["id"],
      fks: ["a_key_id", "b_key_id"],
    });

  it("excludes a whole table", () => {
    expect(planSchema([base()], { tables: { t: { exclude: true } } }, KEYS).tables).toEqual([]);
  });

  it("excludes a table that would otherwise be refused", () => {
    const plan = planSchema([table("t", { columns: ["v", "v_key_id"], fks: ["v_key_id"] })], { tables: { t: { exclude: true } } }, KEYS);
    expect(plan).toEqual({ tables: [], refused: [], warnings: [], preset: "none", scheme: coderScheme });
  });

  it("excludes one column", () => {
    const plan = planSchema([base()], { tables: { t: { columns: { a: { exclude: true } } } } }, KEYS);
    expect(plan.tables[0]?.columns.map((entry) => entry.column)).toEqual(["b"]);
  });

  it("adds a column with a custom key-id column", () => {
    const plan = planSchema([base()], { tables: { t: { columns: { c: { keyIdColumn: "c_kid", keepPlaintext: "blank" } } } } }, KEYS);
    expect(plan.tables[0]?.columns.find((entry) => entry.column === "c")).toEqual({
      column: "c",
      keyIdColumn: "c_kid",
      keepPlaintext: "blank",
      clearTo: null,
      source: "config",
    });
  });

  it("keeps the source of a configured column the naming rule already found", () => {
    const catalog = [table("t", { columns: [notNull("id", "integer"), "v", ["v_key_id", "character varying(7)"]], primaryKey: ["id"] })];
    const plan = planSchema(catalog, { tables: { t: { columns: { v: {} } } } }, KEYS);
    expect(plan.tables[0]?.columns).toEqual([{ column: "v", keyIdColumn: "v_key_id", keepPlaintext: "never", clearTo: null, source: "naming-rule" }]);
  });

  it("overrides keepPlaintext and clearTo of a discovered column, keeping its source", () => {
    const plan = planSchema([base()], { tables: { t: { columns: { a: { keepPlaintext: "empty", clearTo: "gone" } } } } }, KEYS);
    expect(plan.tables[0]?.columns.find((entry) => entry.column === "a")).toEqual({
      column: "a",
      keyIdColumn: "a_key_id",
      keepPlaintext: "empty",
      clearTo: "gone",
      source: "foreign-key",
    });
  });

  it("sets the delete policy and the timestamp columns", () => {
    expect(byName(planSchema([base()], { tables: { t: { deletePolicy: "delete-row" } } }, KEYS), "t").deletePolicy).toEqual({ action: "delete-row" });
    expect(byName(planSchema([base()], { tables: { t: { deletePolicy: "clear", setOnClear: ["updated_at"] } } }, KEYS), "t").deletePolicy).toEqual({
      action: "clear",
      setTimestampColumns: ["updated_at"],
    });
    expect(byName(planSchema([base()], { tables: { t: { setOnClear: ["updated_at"] } } }, KEYS), "t").deletePolicy).toEqual({
      action: "clear",
      setTimestampColumns: ["updated_at"],
    });
  });

  it("matches a table by schema-qualified label", () => {
    const catalog = [table("t", { schema: "app", columns: [notNull("id", "integer"), "v", "v_key_id"], primaryKey: ["id"], fks: ["v_key_id"] })];
    expect(planSchema(catalog, { tables: { "app.t": { exclude: true } } }, KEYS).tables).toEqual([]);
    expect(planSchema(catalog, { tables: { t: { exclude: true } } }, KEYS).tables).toEqual([]);
    expect(tableLabel({ schema: "app", name: "t" })).toBe("app.t");
    expect(tableLabel({ schema: "public", name: "t" })).toBe("t");
    expect(tableLabel({ schema: undefined, name: "t" })).toBe("t");
  });

  describe("names that do not exist are bad_config", () => {
    it.each<[string, DbcryptConfig, string]>([
      ["a missing table", { tables: { nope: { exclude: true } } }, "config names table nope, which does not exist in the database"],
      ["a missing table in another schema", { tables: { "other.t": {} } }, "config names table other.t, which does not exist"],
      ["a missing column", { tables: { t: { columns: { nope: { keepPlaintext: "blank" } } } } }, "config names column t.nope, which does not exist"],
      ["a missing key-id column", { tables: { t: { columns: { c: { keyIdColumn: "c_nope" } } } } }, "config names column t.c_nope, which does not exist"],
      ["a missing default key-id column", { tables: { t: { columns: { c: {} } } } }, "config names column t.c_key_id, which does not exist"],
      ["a missing setOnClear column", { tables: { t: { setOnClear: ["cleared"] } } }, "setOnClear names column t.cleared, which does not exist"],
      ["a missing column to exclude (a typo must not leave the real column in)", { tables: { t: { columns: { aa: { exclude: true } } } } }, "config names column t.aa, which does not exist"],
    ])("%s", (_name, config, message) => {
      const error = planError([keysTable, base()], config);
      expect(error.code).toBe("bad_config");
      expect(error.message).toContain(message);
      expect(error.hint).toBeDefined();
    });
  });

  it("refuses to clear a NOT NULL column to null when the config asks for it", () => {
    const error = planError([base()], { tables: { t: { columns: { b: { clearTo: null } } } } });
    expect(error.code).toBe("bad_config");
    expect(error.message).toBe("t.b is NOT NULL but would be cleared to null");
    expect(error.hint).toMatch(/clearTo/);
  });

  it("accepts clearing a NOT NULL column to a string", () => {
    const plan = planSchema([base()], { tables: { t: { columns: { b: { clearTo: "" } } } } }, KEYS);
    expect(plan.tables[0]?.columns.find((entry) => entry.column === "b")?.clearTo).toBe("");
  });
});

describe("Coder preset", () => {
  it("is detected from a marker table with key-id foreign keys", () => {
    expect(planSchema(coderCatalog(), {}, KEYS).preset).toBe("coder");
    expect(planSchema(coderCatalog(), { preset: "auto" }, KEYS).preset).toBe("coder");
    for (const marker of CODER_MARKER_TABLES) {
      const catalog = coderCatalog().filter((entry) => entry.name === marker || entry.name === KEYS);
      expect(planSchema(catalog, {}, KEYS).preset).toBe("coder");
    }
  });

  it("is not detected from marker names alone (no foreign keys) or from other tables", () => {
    const noFks = coderCatalog().map((entry) => ({ ...entry, keysTableForeignKeys: [] }));
    expect(planSchema(noFks, {}, KEYS).preset).toBe("none");
    const others = coderCatalog().filter((entry) => !CODER_MARKER_TABLES.includes(entry.name));
    expect(planSchema(others, {}, KEYS).preset).toBe("none");
  });

  it("can be forced on or off by the config", () => {
    expect(planSchema(coderCatalog(), { preset: "none" }, KEYS).preset).toBe("none");
    const plain = [keysTable, table("mcp_server_user_tokens", { columns: [notNull("id", "uuid"), notNull("access_token"), "access_token_key_id"], primaryKey: ["id"], fks: ["access_token_key_id"] })];
    expect(planSchema(plain, { preset: "coder" }, KEYS).preset).toBe("coder");
    expect(byName(planSchema(plain, { preset: "coder" }, KEYS), "mcp_server_user_tokens").deletePolicy).toEqual({ action: "delete-row" });
    expect(byName(planSchema(plain, {}, KEYS), "mcp_server_user_tokens").deletePolicy).toEqual({ action: "clear", setTimestampColumns: [] });
  });

  it("covers all 18 encrypted columns of reference §3.1, crypto_keys and the MCP tables included", () => {
    const plan = planSchema(coderCatalog(), {}, KEYS);
    expect(plan.refused).toEqual([]);
    const columns = plan.tables.flatMap((entry) => entry.columns.map((column) => `${entry.ref.name}.${column.column}`)).sort();
    expect(columns).toEqual(
      [
        "ai_provider_keys.api_key",
        "ai_providers.settings",
        "chat_mcp_servers.headers",
        "crypto_keys.secret",
        "external_auth_links.oauth_access_token",
        "external_auth_links.oauth_refresh_token",
        "gitsshkeys.private_key",
        "mcp_server_configs.api_key_value",
        "mcp_server_configs.custom_headers",
        "mcp_server_configs.oauth2_client_secret",
        "mcp_server_configs.signing_secret",
        "mcp_server_user_tokens.access_token",
        "mcp_server_user_tokens.refresh_token",
        "user_ai_provider_keys.api_key",
        "user_links.oauth_access_token",
        "user_links.oauth_refresh_token",
        "user_secrets.value",
        "workspace_secrets.value",
      ].sort(),
    );
    expect(plan.tables.every((entry) => entry.columns.every((column) => column.source === "foreign-key"))).toBe(true);
  });

  it.each([
    // table, delete policy, column -> [keepPlaintext, clearTo]   (reference §3.3, §5.7, PR #28341)
    ["user_links", { action: "delete-row" }, { oauth_access_token: ["never", ""], oauth_refresh_token: ["never", ""] }],
    ["external_auth_links", { action: "delete-row" }, { oauth_access_token: ["never", ""], oauth_refresh_token: ["never", ""] }],
    ["user_secrets", { action: "delete-row" }, { value: ["never", ""] }],
    ["user_ai_provider_keys", { action: "delete-row" }, { api_key: ["blank", ""] }],
    ["ai_provider_keys", { action: "delete-row" }, { api_key: ["blank", null] }],
    ["chat_mcp_servers", { action: "delete-row" }, { headers: ["blank-or-empty-object", ""] }],
    ["mcp_server_user_tokens", { action: "delete-row" }, { access_token: ["blank", ""], refresh_token: ["blank", ""] }],
    ["workspace_secrets", { action: "clear", setTimestampColumns: ["cleared_at"] }, { value: ["never", null] }],
    ["gitsshkeys", { action: "clear", setTimestampColumns: [] }, { private_key: ["empty", ""] }],
    ["ai_providers", { action: "clear", setTimestampColumns: [] }, { settings: ["blank", null] }],
    ["crypto_keys", { action: "clear", setTimestampColumns: [] }, { secret: ["never", null] }],
    [
      "mcp_server_configs",
      { action: "clear", setTimestampColumns: [] },
      { api_key_value: ["blank", ""], custom_headers: ["blank", "{}"], oauth2_client_secret: ["blank", ""], signing_secret: ["blank", ""] },
    ],
    // Newer and chat-era tables: InsertChatProvider/UpdateChatProvider, UpsertUserChatProviderKey,
    // InsertChatAutomationTrigger/UpdateChatAutomationTriggerWebhookSecret (docs/config.md).
    ["chat_providers", { action: "clear", setTimestampColumns: [] }, { api_key: ["blank", ""] }],
    ["user_chat_provider_keys", { action: "delete-row" }, { api_key: ["blank", ""] }],
    ["chat_automation_triggers", { action: "delete-row" }, { webhook_secret: ["blank", null] }],
  ])("%s", (name, deletePolicy, columns) => {
    const entry = byName(planSchema([...coderCatalog(), ...coderChatTables()], {}, KEYS), name);
    expect(entry.deletePolicy).toEqual(deletePolicy);
    expect(Object.fromEntries(entry.columns.map((column) => [column.column, [column.keepPlaintext, column.clearTo]]))).toEqual(columns);
  });

  it("has a rule for every table it lists and nothing for unknown tables", () => {
    const plan = planSchema(
      [...coderCatalog(), table("future_table", { columns: [notNull("id", "uuid"), notNull("secret"), "secret_key_id"], primaryKey: ["id"], fks: ["secret_key_id"] })],
      {},
      KEYS,
    );
    const future = byName(plan, "future_table");
    expect(future.deletePolicy).toEqual({ action: "clear", setTimestampColumns: [] });
    expect(future.columns).toEqual([{ column: "secret", keyIdColumn: "secret_key_id", keepPlaintext: "never", clearTo: "", source: "foreign-key" }]);
    for (const name of Object.keys(CODER_PRESET)) expect(CODER_PRESET[name]?.deletePolicy).toBeDefined();
  });

  it("keeps a blank chat_providers.api_key plaintext, as Coder does (TrimSpace, not only '')", () => {
    const apiKey = byName(planSchema([...coderCatalog(), ...coderChatTables()], {}, KEYS), "chat_providers").columns[0]!;
    expect(apiKey.column).toBe("api_key");
    for (const blank of ["", " ", "\t", " \n\r "]) expect([blank, staysPlaintext(apiKey.keepPlaintext, blank)]).toEqual([blank, true]);
    expect(staysPlaintext(apiKey.keepPlaintext, " sk-key ")).toBe(false);
  });

  it("lists every column it has rules for among the table's known columns", () => {
    for (const [name, rules] of Object.entries(CODER_PRESET)) {
      expect(rules.columns.length, name).toBeGreaterThan(0);
      for (const column of [...Object.keys(rules.keepPlaintext ?? {}), ...Object.keys(rules.clearTo ?? {})]) {
        expect(rules.columns, `${name}.${column}`).toContain(column);
      }
    }
  });

  describe("warnings for columns the preset does not know", () => {
    const withChat = () => [...coderCatalog(), ...coderChatTables()];

    it("gives none for the columns it knows", () => {
      expect(planSchema(withChat(), {}, KEYS).warnings).toEqual([]);
    });

    it("names a new column of a known table, with the config key that settles it", () => {
      const newColumn = table("user_links", { columns: ["new_col", "new_col_key_id"], fks: ["new_col_key_id"] });
      const catalog = withChat().map((entry) =>
        entry.name === "user_links"
          ? { ...entry, columns: [...entry.columns, ...newColumn.columns], keysTableForeignKeys: [...entry.keysTableForeignKeys, ...newColumn.keysTableForeignKeys] }
          : entry,
      );
      const plan = planSchema(catalog, {}, KEYS);
      expect(plan.warnings).toEqual([
        {
          ref: { schema: "public", name: "user_links" },
          column: "new_col",
          message:
            'user_links.new_col: not in dbcrypt\'s Coder preset; every non-NULL value will be encrypted (Coder may keep blank values plaintext); set tables["user_links"].columns["new_col"].keepPlaintext in the config file (dbcrypt.config.json)',
        },
      ]);
      // The column is still processed, under the defaults, and the table keeps its preset policy.
      const links = byName(plan, "user_links");
      expect(links.columns.find((column) => column.column === "new_col")).toMatchObject({ keepPlaintext: "never", source: "foreign-key" });
      expect(links.deletePolicy).toEqual({ action: "delete-row" });
    });

    it("names every column of an unknown table, found by foreign key or naming rule, and says what delete will do", () => {
      const plan = planSchema(
        [
          ...withChat(),
          table("future_table", { columns: [notNull("id", "uuid"), notNull("secret"), "secret_key_id"], primaryKey: ["id"], fks: ["secret_key_id"] }),
          table("named_only", { columns: [notNull("id", "uuid"), "token", "token_key_id"], primaryKey: ["id"] }),
        ],
        {},
        KEYS,
      );
      expect(plan.warnings.map((warning) => [`${warning.ref.name}.${warning.column}`, warning.message])).toEqual([
        [
          "future_table.secret",
          'future_table.secret: not in dbcrypt\'s Coder preset; every non-NULL value will be encrypted (Coder may keep blank values plaintext); set tables["future_table"].columns["secret"].keepPlaintext in the config file (dbcrypt.config.json); delete will clear it to "" in place unless tables["future_table"].deletePolicy says otherwise',
        ],
        [
          "named_only.token",
          'named_only.token: not in dbcrypt\'s Coder preset; every non-NULL value will be encrypted (Coder may keep blank values plaintext); set tables["named_only"].columns["token"].keepPlaintext in the config file (dbcrypt.config.json); delete will clear it to NULL in place unless tables["named_only"].deletePolicy says otherwise',
        ],
      ]);
    });

    it("is settled by keepPlaintext in the config; a deletePolicy alone only drops the delete note", () => {
      const catalog = [
        ...withChat(),
        table("future_table", { columns: [notNull("id", "uuid"), notNull("a"), "a_key_id", notNull("b"), "b_key_id"], primaryKey: ["id"], fks: ["a_key_id", "b_key_id"] }),
      ];
      const plan = planSchema(catalog, { tables: { future_table: { deletePolicy: "delete-row", columns: { a: { keepPlaintext: "never" } } } } }, KEYS);
      expect(plan.warnings.map((warning) => warning.column)).toEqual(["b"]);
      expect(plan.warnings[0]!.message).not.toContain("delete will");
    });

    it("gives none for config-only columns, a refused table, or when the preset is off", () => {
      const extra = table("future_table", { columns: [notNull("id", "uuid"), notNull("secret"), "secret_key_id", "other", "other_kid"], primaryKey: ["id"], fks: ["secret_key_id"] });
      expect(planSchema([...withChat(), extra], { preset: "none" }, KEYS).warnings).toEqual([]);
      const configOnly = planSchema([...withChat(), extra], { tables: { future_table: { columns: { secret: { exclude: true }, other: { keyIdColumn: "other_kid" } } } } }, KEYS);
      expect(configOnly.warnings).toEqual([]);
      const noKey = table("future_table", { columns: ["secret", "secret_key_id"], fks: ["secret_key_id"] });
      const refused = planSchema([...withChat(), noKey], {}, KEYS);
      expect(refused.refused.map((entry) => entry.ref.name)).toEqual(["future_table"]);
      expect(refused.warnings).toEqual([]);
    });
  });

  it("drops a preset timestamp column the table does not have (older workspace_secrets)", () => {
    const catalog = coderCatalog().map((entry) =>
      entry.name === "workspace_secrets" ? { ...entry, columns: entry.columns.filter((column) => column.name !== "cleared_at") } : entry,
    );
    expect(byName(planSchema(catalog, {}, KEYS), "workspace_secrets").deletePolicy).toEqual({ action: "clear", setTimestampColumns: [] });
  });

  it("clears a NOT NULL column to '' where the preset says null but this schema version has NOT NULL", () => {
    const catalog = coderCatalog().map((entry) =>
      entry.name === "workspace_secrets" || entry.name === "ai_providers"
        ? { ...entry, columns: entry.columns.map((column) => (column.name === "value" || column.name === "settings" ? { ...column, nullable: false } : column)) }
        : entry,
    );
    const plan = planSchema(catalog, {}, KEYS);
    expect(byName(plan, "workspace_secrets").columns[0]?.clearTo).toBe("");
    expect(byName(plan, "ai_providers").columns[0]?.clearTo).toBe("");
  });

  it("lets the config override preset rules", () => {
    const plan = planSchema(
      coderCatalog(),
      {
        tables: {
          gitsshkeys: { deletePolicy: "delete-row" },
          user_links: { deletePolicy: "clear" },
          chat_mcp_servers: { columns: { headers: { keepPlaintext: "never", clearTo: "{}" } } },
          crypto_keys: { exclude: true },
        },
      },
      KEYS,
    );
    expect(byName(plan, "gitsshkeys").deletePolicy).toEqual({ action: "delete-row" });
    expect(byName(plan, "user_links").deletePolicy).toEqual({ action: "clear", setTimestampColumns: [] });
    expect(byName(plan, "chat_mcp_servers").columns[0]).toMatchObject({ keepPlaintext: "never", clearTo: "{}" });
    expect(plan.tables.some((entry) => entry.ref.name === "crypto_keys")).toBe(false);
  });

  it("does not apply preset rules when the preset is off", () => {
    const plan = planSchema(coderCatalog(), { preset: "none" }, KEYS);
    const gitsshkeys = byName(plan, "gitsshkeys");
    expect(gitsshkeys.columns[0]).toMatchObject({ keepPlaintext: "never", clearTo: "" });
    expect(byName(plan, "user_links").deletePolicy).toEqual({ action: "clear", setTimestampColumns: [] });
    expect(byName(plan, "workspace_secrets").deletePolicy).toEqual({ action: "clear", setTimestampColumns: [] });
  });
});

describe("foreign keys to the keys table that cannot be paired with data", () => {
  const orphan = table("widgets", {
    columns: [notNull("id", "bigint"), "secret_ref", "token", "token_key_id"],
    primaryKey: ["id"],
    fks: ["secret_ref", "token_key_id"],
  });

  it("refuses the table, naming the column, because its key could never be revoked", () => {
    const plan = planSchema([keysTable, orphan], {}, KEYS);
    expect(plan.tables).toEqual([]);
    expect(plan.refused).toHaveLength(1);
    expect(plan.refused[0]!.columns).toEqual(["secret_ref"]);
    expect(plan.refused[0]!.reason).toContain("keyIdColumn");
  });

  it("accepts it once the config maps the column to its data", () => {
    const withData = table("widgets", {
      columns: [notNull("id", "bigint"), "secret", "secret_ref", "token", "token_key_id"],
      primaryKey: ["id"],
      fks: ["secret_ref", "token_key_id"],
    });
    const plan = planSchema([keysTable, withData], { tables: { widgets: { columns: { secret: { keyIdColumn: "secret_ref" } } } } }, KEYS);
    expect(plan.refused).toEqual([]);
    expect(plan.tables[0]!.columns.map((column) => [column.column, column.keyIdColumn])).toEqual([
      ["secret", "secret_ref"],
      ["token", "token_key_id"],
    ]);
  });
});
