import type { CellPrefix, KeyPrefixes } from "../crypto/schemes/value-scheme.js";
import type { EncryptedColumn, EncryptedTable } from "../schema/model.js";
import { quoteIdent } from "./identifiers.js";

/**
 * A census the database takes itself for schemes whose key id is a prefix of the value
 * (Kubernetes' `k8s:enc:<provider>:v1:<name>:`): the prefix's base64 is known exactly up to its
 * last, partial character, so `substr(value, 1, n) = literal AND substr(value, n + 1, 1) IN
 * (next…)` holds exactly for the cells under that key. Values under keys with no pattern, and the
 * plaintext of rows flagged unencrypted, are left to the row scan (BatchFilter "unmatched").
 * The same text serves PostgreSQL and SQLite; only the row flag's spelling differs.
 */
export type { CellPrefix, KeyPrefixes };

const ENVELOPE_OPEN = '{"_obot_encrypted_env":"';
const ENVELOPE_CLOSE = '"}';

/** A string literal; ours are base64 and the envelope's own text, quoted defensively all the same. */
function sqlString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

function prefixClause(value: string, prefix: CellPrefix): string {
  const n = prefix.literal.length;
  const clauses = [`substr(${value}, 1, ${n}) = ${sqlString(prefix.literal)}`];
  if (prefix.next !== "") clauses.push(`substr(${value}, ${n + 1}, 1) IN (${[...prefix.next].map(sqlString).join(", ")})`);
  if (prefix.form === "bare") clauses.push(`length(${value}) % 4 = 0`);
  else clauses.push(`(length(${value}) - ${ENVELOPE_OPEN.length + ENVELOPE_CLOSE.length}) % 4 = 0`, `substr(${value}, length(${value}) - 1, 2) = ${sqlString(ENVELOPE_CLOSE)}`);
  return `(${clauses.join(" AND ")})`;
}

export function keyClause(value: string, key: KeyPrefixes): string {
  return key.prefixes.length === 0 ? "FALSE" : `(${key.prefixes.map((prefix) => prefixClause(value, prefix)).join(" OR ")})`;
}

/** The row flag is set (a table without one: every row's values are cells). */
export type FlagSql = (table: EncryptedTable) => string;
export const postgresFlagSet: FlagSql = (table) => (table.rowFlag === undefined ? "TRUE" : `(t.${quoteIdent(table.rowFlag)}::text IN ('true', 't', '1'))`);
export const sqliteFlagSet: FlagSql = (table) => (table.rowFlag === undefined ? "1" : `(CAST(t.${quoteIdent(table.rowFlag)} AS TEXT) IN ('1', 'true', 't'))`);

/** Counts per key, and NULLs in rows whose flag is set: columns n, k0, k1, … */
export function prefixCensusSql(table: EncryptedTable, column: EncryptedColumn, keys: KeyPrefixes[], from: string, flagSet: FlagSql): string {
  const value = `t.${quoteIdent(column.column)}`;
  const flag = flagSet(table);
  const counts = [
    `sum(CASE WHEN ${flag} AND ${value} IS NULL THEN 1 ELSE 0 END) AS n`,
    ...keys.map((key, index) => `sum(CASE WHEN ${flag} AND ${keyClause(value, key)} THEN 1 ELSE 0 END) AS k${index}`),
  ];
  return `SELECT ${counts.join(", ")} FROM ${from} AS t`;
}

/** Rows the prefix census did not account for: flagged unencrypted, or holding a value no pattern matches. */
export function unmatchedFilterSql(table: EncryptedTable, keys: KeyPrefixes[], flagSet: FlagSql): string {
  const perColumn = table.columns.map((column) => {
    const value = `t.${quoteIdent(column.column)}`;
    return `(${value} IS NOT NULL AND NOT (${keys.map((key) => keyClause(value, key)).join(" OR ") || "FALSE"}))`;
  });
  return [`NOT ${flagSet(table)}`, ...perColumn].join(" OR ");
}

/** The same test in JavaScript, for the fields of the unmatched rows the scan must not count twice. */
export function matchesKeyPrefix(value: string, key: KeyPrefixes): boolean {
  return key.prefixes.some((prefix) => {
    if (!value.startsWith(prefix.literal)) return false;
    if (prefix.next !== "" && !prefix.next.includes(value.charAt(prefix.literal.length))) return false;
    if (prefix.form === "bare") return value.length % 4 === 0;
    return (value.length - ENVELOPE_OPEN.length - ENVELOPE_CLOSE.length) % 4 === 0 && value.endsWith(ENVELOPE_CLOSE);
  });
}
