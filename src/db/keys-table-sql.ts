import { quoteIdent } from "./identifiers.js";

/**
 * Statements on the keys table, shared by both dialects: the SQL is the same text in PostgreSQL and
 * SQLite once placeholders are chosen. `p(n)` renders the n-th placeholder for the dialect.
 */
export type Placeholder = (position: number) => string;

export const postgresPlaceholder: Placeholder = (position) => `$${position}`;
export const sqlitePlaceholder: Placeholder = (position) => `:p${position}`;

export const KEY_COLUMNS = "number, active_key_digest, revoked_key_digest, created_at, revoked_at, test";

export function selectKeysSql(keysTable: string): string {
  return `SELECT ${KEY_COLUMNS} FROM ${quoteIdent(keysTable)} ORDER BY number ASC`;
}

export function selectKeyByDigestSql(keysTable: string, p: Placeholder): string {
  return `SELECT ${KEY_COLUMNS} FROM ${quoteIdent(keysTable)} WHERE active_key_digest = ${p(1)} OR revoked_key_digest = ${p(1)}`;
}

/** Coder's InsertDBCryptKey with number = max(number over all rows) + 1. */
export function insertKeySql(keysTable: string, p: Placeholder): string {
  return (
    `INSERT INTO ${quoteIdent(keysTable)} (number, active_key_digest, created_at, test) ` +
    `SELECT COALESCE(MAX(number), 0) + 1, ${p(1)}, CURRENT_TIMESTAMP, ${p(2)} FROM ${quoteIdent(keysTable)}`
  );
}

/** Coder's RevokeDBCryptKey: swap the digest columns on the active row only. */
export function revokeKeySql(keysTable: string, p: Placeholder): string {
  return (
    `UPDATE ${quoteIdent(keysTable)} SET revoked_key_digest = active_key_digest, ` +
    `active_key_digest = revoked_key_digest, revoked_at = CURRENT_TIMESTAMP ` +
    `WHERE active_key_digest = ${p(1)} AND revoked_key_digest IS NULL`
  );
}

export function createKeysTablePostgresSql(keysTable: string): string[] {
  const table = quoteIdent(keysTable);
  return [
    `CREATE TABLE ${table} (` +
      `number integer NOT NULL PRIMARY KEY, ` +
      `active_key_digest text UNIQUE, ` +
      `revoked_key_digest text UNIQUE, ` +
      `created_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP, ` +
      `revoked_at timestamp with time zone, ` +
      `test text NOT NULL)`,
    `COMMENT ON TABLE ${table} IS 'A table used to store the keys used to encrypt the database.'`,
    `COMMENT ON COLUMN ${table}.number IS 'An integer used to identify the key.'`,
    `COMMENT ON COLUMN ${table}.active_key_digest IS 'If the key is active, the digest of the active key.'`,
    `COMMENT ON COLUMN ${table}.revoked_key_digest IS 'If the key has been revoked, the digest of the revoked key.'`,
    `COMMENT ON COLUMN ${table}.test IS 'A column used to test the encryption.'`,
  ];
}

export function createKeysTableSqliteSql(keysTable: string): string[] {
  return [
    `CREATE TABLE ${quoteIdent(keysTable)} (` +
      `number INTEGER NOT NULL PRIMARY KEY, ` +
      `active_key_digest TEXT UNIQUE, ` +
      `revoked_key_digest TEXT UNIQUE, ` +
      `created_at TEXT DEFAULT CURRENT_TIMESTAMP, ` +
      `revoked_at TEXT, ` +
      `test TEXT NOT NULL)`,
  ];
}
