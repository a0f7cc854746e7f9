/**
 * A schema shaped like Coder's encrypted tables (reference §2.1, §3.1), built from one description
 * so PostgreSQL and SQLite get the same tables, columns and constraint names.
 */
import { quoteIdent, type EngineKind, type TestDb } from "./test-db.js";

type ColumnType = "uuid" | "text" | "integer" | "boolean" | "timestamptz";

interface ColumnSpec {
  name: string;
  type: ColumnType;
  notNull?: boolean;
  /** SQL text valid on both engines. */
  default?: string;
  /** Adds `<name>_key_id text` right after this column, with a FK to dbcrypt_keys(active_key_digest). */
  encrypted?: { fkName?: string };
}

interface ForeignKeySpec {
  name: string;
  column: string;
  references: string;
  onDelete?: "CASCADE";
}

interface TableSpec {
  name: string;
  columns: ColumnSpec[];
  primaryKey: string[];
  unique?: { name: string; column: string }[];
  foreignKeys?: ForeignKeySpec[];
}

export interface CoderEncryptedColumn {
  table: string;
  column: string;
  keyIdColumn: string;
  fkName: string;
}

const TYPE_NAMES: Record<EngineKind, Record<ColumnType, string>> = {
  postgres: {
    uuid: "uuid",
    text: "text",
    integer: "integer",
    boolean: "boolean",
    timestamptz: "timestamp with time zone",
  },
  sqlite: { uuid: "TEXT", text: "TEXT", integer: "INTEGER", boolean: "INTEGER", timestamptz: "TEXT" },
};

const MAX_IDENTIFIER_BYTES = 63;

const col = (name: string, type: ColumnType, options: Omit<ColumnSpec, "name" | "type"> = {}): ColumnSpec => ({
  name,
  type,
  ...options,
});
const required = { notNull: true } as const;
const encrypted = { encrypted: {} } as const;

const TABLES: TableSpec[] = [
  {
    name: "dbcrypt_keys",
    columns: [
      col("number", "integer", required),
      col("active_key_digest", "text"),
      col("revoked_key_digest", "text"),
      col("created_at", "timestamptz", { default: "CURRENT_TIMESTAMP" }),
      col("revoked_at", "timestamptz"),
      col("test", "text", required),
    ],
    primaryKey: ["number"],
    unique: [
      { name: "dbcrypt_keys_active_key_digest_key", column: "active_key_digest" },
      { name: "dbcrypt_keys_revoked_key_digest_key", column: "revoked_key_digest" },
    ],
  },
  {
    name: "users",
    columns: [
      col("id", "uuid", required),
      col("username", "text", required),
      col("is_system", "boolean", { notNull: true, default: "false" }),
      col("deleted", "boolean", { notNull: true, default: "false" }),
    ],
    primaryKey: ["id"],
  },
  {
    name: "user_links",
    columns: [
      col("user_id", "uuid", required),
      col("login_type", "text", required),
      col("linked_id", "text", { notNull: true, default: "''" }),
      col("oauth_access_token", "text", { notNull: true, default: "''", ...encrypted }),
      col("oauth_refresh_token", "text", { notNull: true, default: "''", ...encrypted }),
      col("updated_at", "timestamptz", { notNull: true, default: "CURRENT_TIMESTAMP" }),
    ],
    primaryKey: ["user_id", "login_type"],
    foreignKeys: [{ name: "user_links_user_id_fkey", column: "user_id", references: "users", onDelete: "CASCADE" }],
  },
  {
    name: "external_auth_links",
    columns: [
      col("provider_id", "text", required),
      col("user_id", "uuid", required),
      // The table was renamed from git_auth_links; Coder's constraints kept the old names.
      col("oauth_access_token", "text", {
        notNull: true,
        encrypted: { fkName: "git_auth_links_oauth_access_token_key_id_fkey" },
      }),
      col("oauth_refresh_token", "text", {
        notNull: true,
        encrypted: { fkName: "git_auth_links_oauth_refresh_token_key_id_fkey" },
      }),
      col("oauth_refresh_failure_reason", "text", { notNull: true, default: "''" }),
      col("updated_at", "timestamptz", { notNull: true, default: "CURRENT_TIMESTAMP" }),
    ],
    primaryKey: ["provider_id", "user_id"],
  },
  {
    name: "crypto_keys",
    columns: [
      col("feature", "text", required),
      col("sequence", "integer", required),
      col("secret", "text", encrypted),
      col("starts_at", "timestamptz", required),
    ],
    primaryKey: ["feature", "sequence"],
  },
  {
    name: "user_secrets",
    columns: [
      col("id", "uuid", required),
      col("user_id", "uuid", required),
      col("name", "text", required),
      col("value", "text", { notNull: true, ...encrypted }),
    ],
    primaryKey: ["id"],
    foreignKeys: [{ name: "user_secrets_user_id_fkey", column: "user_id", references: "users", onDelete: "CASCADE" }],
  },
  {
    name: "gitsshkeys",
    columns: [
      col("user_id", "uuid", required),
      col("private_key", "text", { notNull: true, ...encrypted }),
      col("public_key", "text", required),
    ],
    primaryKey: ["user_id"],
    foreignKeys: [{ name: "gitsshkeys_user_id_fkey", column: "user_id", references: "users" }],
  },
  {
    name: "mcp_server_configs",
    columns: [
      col("id", "uuid", required),
      col("oauth2_client_secret", "text", { notNull: true, default: "''", ...encrypted }),
      col("api_key_value", "text", { notNull: true, default: "''", ...encrypted }),
      col("custom_headers", "text", { notNull: true, default: "'{}'", ...encrypted }),
      col("signing_secret", "text", { notNull: true, default: "''", ...encrypted }),
    ],
    primaryKey: ["id"],
  },
  {
    name: "mcp_server_user_tokens",
    columns: [
      col("mcp_server_config_id", "uuid", required),
      col("user_id", "uuid", required),
      col("access_token", "text", { notNull: true, ...encrypted }),
      col("refresh_token", "text", { notNull: true, default: "''", ...encrypted }),
    ],
    primaryKey: ["mcp_server_config_id", "user_id"],
    foreignKeys: [
      {
        name: "mcp_server_user_tokens_mcp_server_config_id_fkey",
        column: "mcp_server_config_id",
        references: "mcp_server_configs",
        onDelete: "CASCADE",
      },
      { name: "mcp_server_user_tokens_user_id_fkey", column: "user_id", references: "users", onDelete: "CASCADE" },
    ],
  },
  {
    name: "workspace_secrets",
    columns: [col("id", "uuid", required), col("value", "text", encrypted), col("cleared_at", "timestamptz")],
    primaryKey: ["id"],
  },
  {
    name: "ai_provider_keys",
    columns: [col("id", "uuid", required), col("api_key", "text", { notNull: true, ...encrypted })],
    primaryKey: ["id"],
  },
  {
    name: "chat_mcp_servers",
    columns: [col("id", "uuid", required), col("headers", "text", { notNull: true, default: "'{}'", ...encrypted })],
    primaryKey: ["id"],
  },
];

/** Table names in creation order (parents first). */
export const CODER_TABLES: readonly string[] = TABLES.map((table) => table.name);

export const CODER_PRIMARY_KEYS: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  TABLES.map((table) => [table.name, table.primaryKey]),
);

export const CODER_ENCRYPTED_COLUMNS: readonly CoderEncryptedColumn[] = TABLES.flatMap((table) =>
  table.columns.flatMap((column) => (column.encrypted ? [describeEncrypted(table.name, column)] : [])),
);

export function primaryKeyOf(table: string): readonly string[] {
  const primaryKey = CODER_PRIMARY_KEYS[table];
  if (!primaryKey) throw new Error(`${table} is not a table of the Coder test schema`);
  return primaryKey;
}

export function encryptedColumnsOf(table: string): CoderEncryptedColumn[] {
  return CODER_ENCRYPTED_COLUMNS.filter((column) => column.table === table);
}

export async function createCoderSchema(db: TestDb): Promise<void> {
  await db.exec(TABLES.map((table) => createTableSql(table, db.kind)).join(";\n"));
}

function describeEncrypted(table: string, column: ColumnSpec): CoderEncryptedColumn {
  const keyIdColumn = `${column.name}_key_id`;
  // PostgreSQL's name for an inline FK; none of ours reaches the length where it would truncate.
  const fkName = column.encrypted?.fkName ?? `${table}_${keyIdColumn}_fkey`;
  if (Buffer.byteLength(fkName) > MAX_IDENTIFIER_BYTES) throw new Error(`constraint name too long: ${fkName}`);
  return { table, column: column.name, keyIdColumn, fkName };
}

function createTableSql(table: TableSpec, kind: EngineKind): string {
  const definitions = [
    ...table.columns.flatMap((column) => columnDefinitions(table.name, column, kind)),
    `CONSTRAINT ${quoteIdent(`${table.name}_pkey`)} PRIMARY KEY (${table.primaryKey.map(quoteIdent).join(", ")})`,
    ...(table.unique ?? []).map(({ name, column }) => `CONSTRAINT ${quoteIdent(name)} UNIQUE (${quoteIdent(column)})`),
    ...encryptedColumnsOf(table.name).map(keysTableForeignKey),
    ...(table.foreignKeys ?? []).map(foreignKey),
  ];
  return `CREATE TABLE ${quoteIdent(table.name)} (\n  ${definitions.join(",\n  ")}\n)`;
}

function columnDefinitions(table: string, column: ColumnSpec, kind: EngineKind): string[] {
  const parts = [quoteIdent(column.name), TYPE_NAMES[kind][column.type]];
  if (column.notNull) parts.push("NOT NULL");
  if (column.default !== undefined) parts.push(`DEFAULT ${column.default}`);
  const definitions = [parts.join(" ")];
  if (column.encrypted) {
    const { keyIdColumn } = describeEncrypted(table, column);
    definitions.push(`${quoteIdent(keyIdColumn)} ${TYPE_NAMES[kind].text}`);
  }
  return definitions;
}

function keysTableForeignKey({ keyIdColumn, fkName }: CoderEncryptedColumn): string {
  return (
    `CONSTRAINT ${quoteIdent(fkName)} FOREIGN KEY (${quoteIdent(keyIdColumn)}) ` +
    `REFERENCES "dbcrypt_keys" ("active_key_digest")`
  );
}

function foreignKey({ name, column, references, onDelete }: ForeignKeySpec): string {
  const action = onDelete ? ` ON DELETE ${onDelete}` : "";
  return `CONSTRAINT ${quoteIdent(name)} FOREIGN KEY (${quoteIdent(column)}) REFERENCES ${quoteIdent(references)} ("id")${action}`;
}
