import type { CellPrefix, KeyPrefixes } from "../crypto/schemes/value-scheme.js";
import type { EncryptedColumn, EncryptedTable } from "../schema/model.js";
import { quoteIdent } from "./identifiers.js";

/**
 * A census the database takes itself for schemes whose key id is a prefix of the value
 * (Kubernetes' `k8s:enc:<provider>:v1:<name>:`): the prefix's base64 is known exactly up to its
 * last, partial character, so `substr(value, 1, n) = literal AND substr(value, n + 1, 1) IN
 * (next…)` holds exactly for the cells under that key. Values under keys with no pattern, and the
 * plaintext of rows flagged unencrypted, are left to the row scan (BatchFilter "unmatched").
 * A matched value is ASCII (so SQL's and JavaScript's lengths agree) and an envelope holds one
 * plain string (so it is what JSON.parse reads). The same text serves PostgreSQL and SQLite; the
 * row flag's spelling and the character tests differ (DialectPrefixSql).
 */
export type { CellPrefix, KeyPrefixes };

const ENVELOPE_OPEN = '{"_obot_encrypted_env":"';
const ENVELOPE_CLOSE = '"}';
const NOT_ASCII = /[^\x00-\x7f]/;

/** A string literal; ours are base64 and the envelope's own text, quoted defensively all the same. */
function sqlString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/**
 * What differs between the databases: the row flag (NULL counts as unset), "every character is
 * one byte" (so SQL's character counts are JavaScript's), and "does not contain".
 */
export interface DialectPrefixSql {
  flagSet(table: EncryptedTable): string;
  asciiOnly(expression: string): string;
  lacks(expression: string, character: string): string;
}

export const postgresPrefixSql: DialectPrefixSql = {
  flagSet: (table) => (table.rowFlag === undefined ? "TRUE" : `coalesce(t.${quoteIdent(table.rowFlag)}::text IN ('true', 't', '1'), FALSE)`),
  asciiOnly: (expression) => `octet_length(${expression}) = length(${expression})`,
  lacks: (expression, character) => `strpos(${expression}, ${sqlString(character)}) = 0`,
};

export const sqlitePrefixSql: DialectPrefixSql = {
  flagSet: (table) => (table.rowFlag === undefined ? "1" : `coalesce(CAST(t.${quoteIdent(table.rowFlag)} AS TEXT) IN ('1', 'true', 't'), 0)`),
  asciiOnly: (expression) => `length(CAST(${expression} AS BLOB)) = length(${expression})`,
  lacks: (expression, character) => `instr(${expression}, ${sqlString(character)}) = 0`,
};

const ENVELOPE_EXTRA = ENVELOPE_OPEN.length + ENVELOPE_CLOSE.length;

/**
 * Cheap tests only (one pass each in C): the prefix, the length, every character one byte, and
 * for the envelope no quote or backslash inside, so JSON.parse gives back exactly the inner text.
 * Whether the rest is base64 is for opening to say, as it is for keyIdOfCell.
 */
function prefixClause(value: string, prefix: CellPrefix, dialect: DialectPrefixSql): string {
  const n = prefix.literal.length;
  const clauses = [`substr(${value}, 1, ${n}) = ${sqlString(prefix.literal)}`];
  if (prefix.next !== "") clauses.push(`substr(${value}, ${n + 1}, 1) IN (${[...prefix.next].map(sqlString).join(", ")})`);
  if (prefix.form === "bare") clauses.push(`length(${value}) % 4 = 0`, dialect.asciiOnly(value));
  else {
    const inner = `substr(${value}, ${ENVELOPE_OPEN.length + 1}, length(${value}) - ${ENVELOPE_EXTRA})`;
    clauses.push(
      `(length(${value}) - ${ENVELOPE_EXTRA}) % 4 = 0`,
      `substr(${value}, length(${value}) - 1, 2) = ${sqlString(ENVELOPE_CLOSE)}`,
      dialect.asciiOnly(value),
      dialect.lacks(inner, '"'),
      dialect.lacks(inner, "\\"),
    );
  }
  return `(${clauses.join(" AND ")})`;
}

export function keyClause(value: string, key: KeyPrefixes, dialect: DialectPrefixSql): string {
  return key.prefixes.length === 0 ? "FALSE" : `(${key.prefixes.map((prefix) => prefixClause(value, prefix, dialect)).join(" OR ")})`;
}

/** Matches of any key in the one cell form (for the column's spelling, which the scan cannot see). */
function formClause(value: string, keys: KeyPrefixes[], form: CellPrefix["form"], dialect: DialectPrefixSql): string {
  const prefixes = keys.flatMap((key) => key.prefixes.filter((prefix) => prefix.form === form));
  return prefixes.length === 0 ? "FALSE" : `(${prefixes.map((prefix) => prefixClause(value, prefix, dialect)).join(" OR ")})`;
}

/** Counts: NULLs in rows whose flag is set, bare and enveloped matches, then per key: columns n, bare, envelope, k0, k1, … */
export function prefixCensusSql(table: EncryptedTable, column: EncryptedColumn, keys: KeyPrefixes[], from: string, dialect: DialectPrefixSql): string {
  const value = `t.${quoteIdent(column.column)}`;
  const flag = dialect.flagSet(table);
  const counts = [
    `sum(CASE WHEN ${flag} AND ${value} IS NULL THEN 1 ELSE 0 END) AS n`,
    `sum(CASE WHEN ${flag} AND ${formClause(value, keys, "bare", dialect)} THEN 1 ELSE 0 END) AS bare`,
    `sum(CASE WHEN ${flag} AND ${formClause(value, keys, "json-envelope", dialect)} THEN 1 ELSE 0 END) AS envelope`,
    ...keys.map((key, index) => `sum(CASE WHEN ${flag} AND ${keyClause(value, key, dialect)} THEN 1 ELSE 0 END) AS k${index}`),
  ];
  return `SELECT ${counts.join(", ")} FROM ${from} AS t`;
}

/** Rows the prefix census did not account for: flagged unencrypted, or holding a value no pattern matches. */
export function unmatchedFilterSql(table: EncryptedTable, keys: KeyPrefixes[], dialect: DialectPrefixSql): string {
  const perColumn = table.columns.map((column) => {
    const value = `t.${quoteIdent(column.column)}`;
    return `(${value} IS NOT NULL AND NOT (${keys.map((key) => keyClause(value, key, dialect)).join(" OR ") || "FALSE"}))`;
  });
  return [`NOT ${dialect.flagSet(table)}`, ...perColumn].join(" OR ");
}

/** The same test in JavaScript, for the fields of the unmatched rows the scan must not count twice. */
export function matchesKeyPrefix(value: string, key: KeyPrefixes): boolean {
  return key.prefixes.some((prefix) => {
    if (!value.startsWith(prefix.literal)) return false;
    if (prefix.next !== "" && !prefix.next.includes(value.charAt(prefix.literal.length))) return false;
    if (NOT_ASCII.test(value)) return false;
    if (prefix.form === "bare") return value.length % 4 === 0;
    const inner = value.slice(ENVELOPE_OPEN.length, value.length - ENVELOPE_CLOSE.length);
    return (value.length - ENVELOPE_EXTRA) % 4 === 0 && value.endsWith(ENVELOPE_CLOSE) && !inner.includes('"') && !inner.includes("\\");
  });
}
