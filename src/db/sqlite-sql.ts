import { keyIdColumnOf, type EncryptedColumn, type EncryptedTable } from "../schema/model.js";
import type { BatchFilter } from "./dialect.js";
import { prefixCensusSql, sqlitePrefixSql, unmatchedFilterSql, type KeyPrefixes } from "./prefix-census-sql.js";
import { quoteIdent } from "./identifiers.js";
import { sqlitePartitionSql } from "./partition.js";

/**
 * Pure builders for the SQLite statements on user tables. SQLite runs in-process, so a batch is a
 * prepared statement executed once per row inside one BEGIN IMMEDIATE transaction: as fast as a
 * set-based statement there, and it reports per row whether the compare-and-swap matched.
 */
function tableName(table: EncryptedTable): string {
  return quoteIdent(table.ref.name);
}

function encryptedClause(keyIdColumn: string): string {
  return `NULLIF(${quoteIdent(keyIdColumn)}, '') IS NOT NULL`;
}

function filterSql(table: EncryptedTable, filter: BatchFilter): string {
  if (filter.kind === "all") return "1";
  if (filter.kind === "unmatched") return unmatchedFilterSql(table, filter.keys, sqlitePrefixSql);
  // decrypt also clears the row flag of rows holding no value at all (Obot's `encrypted`).
  const flagged = filter.kind === "encrypted" && table.rowFlag !== undefined ? [`(CAST(${quoteIdent(table.rowFlag)} AS TEXT) IN ('1', 'true', 't'))`] : [];
  return [...table.columns
    .map((column) => {
      if (column.keyIdColumn === undefined) return `(${quoteIdent(column.column)} IS NOT NULL)`;
      if (filter.kind === "encrypted") return `(${encryptedClause(column.keyIdColumn)})`;
      const keyId = quoteIdent(column.keyIdColumn);
      return `((${keyId} <> :target AND ${keyId} <> '') OR (NULLIF(${keyId}, '') IS NULL AND ${quoteIdent(column.column)} IS NOT NULL))`;
    })
    , ...flagged].join(" OR ");
}

function rowKeyList(table: EncryptedTable): string {
  return table.rowKey.map(quoteIdent).join(", ");
}

/** Named parameters: :target, :k0.. for the cursor, :limit. */
export function selectBatchSqlite(table: EncryptedTable, filter: BatchFilter, hasCursor: boolean): string {
  const select = [
    ...table.rowKey.map(quoteIdent),
    ...table.columns.flatMap((column) => [quoteIdent(column.column), column.keyIdColumn === undefined ? "NULL" : quoteIdent(column.keyIdColumn)]),
    ...table.context.map((input) => `CAST(${quoteIdent(input.column)} AS TEXT)`),
  ];
  const where = [`(${filterSql(table, filter)})`];
  if (filter.partition !== undefined) where.push(`(${sqlitePartitionSql(table, filter.partition)})`);
  if (hasCursor) where.unshift(`(${rowKeyList(table)}) > (${table.rowKey.map((_, index) => `:k${index}`).join(", ")})`);
  // Aliased as t for the prefix-census filter; every other name is unqualified and resolves as before.
  return `SELECT ${select.join(", ")} FROM ${tableName(table)} AS t WHERE ${where.join(" AND ")} ORDER BY ${rowKeyList(table)} LIMIT :limit`;
}

/**
 * Parameters: :k0.. row key, :ov0/:ok0.. expected, :nv0/:nk0.. next, :cx0.. context as read.
 * `IS` is SQLite's null-safe equality. SQLite has no row version, so the context columns are
 * compared too: a value sealed for the workspace as read must not land in a row moved to another.
 */
export function updateRowSqlite(table: EncryptedTable): string {
  const withKeyId = (column: EncryptedTable["columns"][number], clause: (keyIdColumn: string) => string) => (column.keyIdColumn === undefined ? [] : [clause(column.keyIdColumn)]);
  const set = table.columns.flatMap((column, index) => [`${quoteIdent(column.column)} = :nv${index}`, ...withKeyId(column, (keyId) => `${quoteIdent(keyId)} = :nk${index}`)]);
  if (table.rowFlag !== undefined) set.push(`${quoteIdent(table.rowFlag)} = :nf`);
  const where = [
    ...table.rowKey.map((name, index) => `${quoteIdent(name)} = :k${index}`),
    ...table.columns.flatMap((column, index) => [`${quoteIdent(column.column)} IS :ov${index}`, ...withKeyId(column, (keyId) => `${quoteIdent(keyId)} IS :ok${index}`)]),
    ...table.context.map((input, index) => `CAST(${quoteIdent(input.column)} AS TEXT) IS :cx${index}`),
  ];
  return `UPDATE ${tableName(table)} SET ${set.join(", ")} WHERE ${where.join(" AND ")}`;
}

/**
 * Parameters: :k0.. row key, :c0.. clear values, and :ov0.. the values as read for columns that
 * keep their key id inside the value (the row must be unchanged: SQL cannot re-check those).
 */
export function deleteRowSqlite(table: EncryptedTable): string {
  const unchanged = table.columns.flatMap((column, index) => (column.keyIdColumn === undefined ? [`${quoteIdent(column.column)} IS :ov${index}`] : []));
  const match = [...table.rowKey.map((name, index) => `${quoteIdent(name)} = :k${index}`), `(${filterSql(table, { kind: "encrypted" })})`, ...unchanged];
  if (table.deletePolicy.action === "delete-row") return `DELETE FROM ${tableName(table)} WHERE ${match.join(" AND ")}`;
  const set = table.columns.flatMap((column, index) => {
    // ops/delete.ts refuses the clear policy for a column whose key id is inside the value.
    const keyIdColumn = keyIdColumnOf(column);
    const plaintext = `NULLIF(${quoteIdent(keyIdColumn)}, '') IS NULL`;
    return [
      `${quoteIdent(column.column)} = CASE WHEN ${plaintext} THEN ${quoteIdent(column.column)} ELSE :c${index} END`,
      `${quoteIdent(keyIdColumn)} = CASE WHEN ${plaintext} THEN ${quoteIdent(keyIdColumn)} ELSE NULL END`,
    ];
  });
  for (const timestampColumn of table.deletePolicy.setTimestampColumns) set.push(`${quoteIdent(timestampColumn)} = CURRENT_TIMESTAMP`);
  return `UPDATE ${tableName(table)} SET ${set.join(", ")} WHERE ${match.join(" AND ")}`;
}

/** As on PostgreSQL: a bare grouped count first, the plaintext breakdown only when needed. */
export function censusByKeySqlite(table: EncryptedTable, column: EncryptedColumn): string {
  return `SELECT ${quoteIdent(keyIdColumnOf(column))} AS key_id, count(*) AS rows FROM ${tableName(table)} GROUP BY 1`;
}

export function censusSqlite(table: EncryptedTable, column: EncryptedColumn): string {
  const value = quoteIdent(column.column);
  const trimmed = `trim(${value}, char(32, 9, 10, 13, 11, 12))`;
  return (
    `SELECT count(*) AS rows, ` +
    `coalesce(sum(${value} IS NULL), 0) AS nulls, ` +
    `coalesce(sum(${value} = ''), 0) AS empties, ` +
    `coalesce(sum(${trimmed} = ''), 0) AS blanks, ` +
    `coalesce(sum(${trimmed} = '{}'), 0) AS empty_objects ` +
    `FROM ${tableName(table)} WHERE NULLIF(${quoteIdent(keyIdColumnOf(column))}, '') IS NULL`
  );
}

/** One row whose key has a NULL part, if any: such rows cannot be addressed by that key. */
export function nullKeyProbeSqlite(table: string, columns: string[]): string {
  return `SELECT 1 FROM ${quoteIdent(table)} WHERE ${columns.map((column) => `${quoteIdent(column)} IS NULL`).join(" OR ")} LIMIT 1`;
}

export function prefixCensusSqlite(table: EncryptedTable, column: EncryptedColumn, keys: KeyPrefixes[]): string {
  return prefixCensusSql(table, column, keys, tableName(table), sqlitePrefixSql);
}
