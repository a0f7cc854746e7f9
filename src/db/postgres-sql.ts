import { keyIdColumnOf, type EncryptedColumn, type EncryptedTable } from "../schema/model.js";
import type { BatchFilter } from "./dialect.js";
import { postgresPrefixSql, prefixCensusSql, unmatchedFilterSql, type KeyPrefixes } from "./prefix-census-sql.js";
import { qualifiedTable, quoteIdent } from "./identifiers.js";
import { postgresPartitionSql } from "./partition.js";

/**
 * Pure builders for every PostgreSQL statement that touches user tables. Identifiers are always
 * quoted; row keys travel as text and are cast back to their column type, so keys of any type
 * (uuid, bigint, composite) round-trip exactly and keyset comparisons use the primary key index.
 */
export interface SqlStatement {
  text: string;
  values: unknown[];
}


// \x0B rather than \v: PostgreSQL documents no \v escape, and an older server may read it as 'v'.
const ASCII_WHITESPACE = "E' \\t\\n\\r\\x0B\\f'";

function isPlaintextKeyId(keyIdExpr: string): string {
  return `NULLIF(${keyIdExpr}, '') IS NULL`;
}

function filterSql(table: EncryptedTable, filter: BatchFilter, keyIdParam: string): string {
  if (filter.kind === "all") return "TRUE";
  if (filter.kind === "unmatched") return unmatchedFilterSql(table, filter.keys, postgresPrefixSql);
  const perColumn = table.columns.map((column) => {
    const value = `t.${quoteIdent(column.column)}`;
    if (column.keyIdColumn === undefined) return `${value} IS NOT NULL`;
    const keyId = `t.${quoteIdent(column.keyIdColumn)}`;
    if (filter.kind === "encrypted") return `NOT ${isPlaintextKeyId(keyId)}`;
    return `(${keyId} <> ${keyIdParam} AND ${keyId} <> '') OR (${isPlaintextKeyId(keyId)} AND ${value} IS NOT NULL)`;
  });
  // decrypt also clears the row flag of rows holding no value at all (Obot's `encrypted`).
  if (filter.kind === "encrypted" && table.rowFlag !== undefined) perColumn.push(`t.${quoteIdent(table.rowFlag)}::text IN ('true', 't', '1')`);
  return perColumn.map((clause) => `(${clause})`).join(" OR ");
}

function rowKeyTuple(table: EncryptedTable, prefix: string): string {
  return `(${table.rowKey.map((name) => `${prefix}${quoteIdent(name)}`).join(", ")})`;
}

export function selectBatchSql(table: EncryptedTable, filter: BatchFilter, after: readonly unknown[] | undefined, limit: number): SqlStatement {
  const values: unknown[] = [];
  const select = [
    ...table.rowKey.map((name) => `t.${quoteIdent(name)}::text`),
    ...table.columns.flatMap((column) => [`t.${quoteIdent(column.column)}`, column.keyIdColumn === undefined ? "NULL::text" : `t.${quoteIdent(column.keyIdColumn)}`]),
    "t.xmin::text",
    ...table.context.map((input) => `t.${quoteIdent(input.column)}::text`),
  ];
  let keyIdParam = "";
  // Only a key-id column compares with the key; an unused parameter would have no type.
  if (filter.kind === "not-under-key" && table.columns.some((column) => column.keyIdColumn !== undefined)) {
    values.push(filter.keyId);
    keyIdParam = `$${values.length}`;
  }
  const where = [`(${filterSql(table, filter, keyIdParam)})`];
  if (filter.partition !== undefined) where.push(`(${postgresPartitionSql(table, filter.partition, "t.")})`);
  if (after !== undefined) {
    const placeholders = after.map((value, index) => {
      values.push(value);
      return `$${values.length}::${table.rowKeyTypes[index]}`;
    });
    where.unshift(`${rowKeyTuple(table, "t.")} > (${placeholders.join(", ")})`);
  }
  values.push(limit);
  const text =
    `SELECT ${select.join(", ")} FROM ${qualifiedTable(table)} AS t WHERE ${where.join(" AND ")} ` +
    `ORDER BY ${table.rowKey.map((name) => `t.${quoteIdent(name)}`).join(", ")} LIMIT $${values.length}`;
  return { text, values };
}

/**
 * One UPDATE … FROM unnest(…) for a whole batch: the row key, then the guard's columns, then the
 * new value and key id of each encrypted column, then the row flag where the table has one, each
 * as a text[] parameter.
 */
function batchUpdateSql(table: EncryptedTable, guardAliases: string[], guard: string[], values: unknown[]): SqlStatement {
  const keyAliases = table.rowKey.map((_, index) => `k${index}`);
  const nextAliases = [...table.columns.flatMap((_, index) => [`nv${index}`, `nk${index}`]), ...(table.rowFlag === undefined ? [] : ["nf"])];
  const aliases = [...keyAliases, ...guardAliases, ...nextAliases];
  const unnestArgs = aliases.map((_, index) => `$${index + 1}::text[]`).join(", ");
  const set = table.columns.flatMap((column, index) => [
    `${quoteIdent(column.column)} = v.nv${index}`,
    ...(column.keyIdColumn === undefined ? [] : [`${quoteIdent(column.keyIdColumn)} = v.nk${index}`]),
  ]);
  if (table.rowFlag !== undefined) set.push(`${quoteIdent(table.rowFlag)} = v.nf::boolean`);
  const where = [...table.rowKey.map((name, index) => `t.${quoteIdent(name)} = v.k${index}::${table.rowKeyTypes[index]}`), ...guard];
  const text =
    `UPDATE ${qualifiedTable(table)} AS t SET ${set.join(", ")} ` +
    `FROM unnest(${unnestArgs}) AS v(${aliases.join(", ")}) ` +
    `WHERE ${where.join(" AND ")} ` +
    `RETURNING ${table.rowKey.map((name) => `t.${quoteIdent(name)}::text`).join(", ")}`;
  return { text, values };
}

/** Compare-and-swap: a row is written only if every value and key id is still what was read. */
export function updateBatchSql(table: EncryptedTable, rowKeys: unknown[][], expected: unknown[][], next: unknown[][]): SqlStatement {
  const guardAliases = table.columns.flatMap((_, index) => [`ov${index}`, `ok${index}`]);
  const guard = table.columns.flatMap((column, index) => [
    `t.${quoteIdent(column.column)} IS NOT DISTINCT FROM v.ov${index}`,
    ...(column.keyIdColumn === undefined ? [] : [`t.${quoteIdent(column.keyIdColumn)} IS NOT DISTINCT FROM v.ok${index}`]),
  ]);
  return batchUpdateSql(table, guardAliases, guard, [...rowKeys, ...expected, ...next]);
}

/**
 * Compare-and-swap on the row version: the row is written only if its xmin is still the one read,
 * i.e. no transaction has changed the row since. Under READ COMMITTED a concurrent writer's update
 * makes PostgreSQL re-check this condition against the new row version, which then fails.
 */
export function updateBatchByVersionSql(table: EncryptedTable, rowKeys: unknown[][], versions: unknown[], next: unknown[][]): SqlStatement {
  return batchUpdateSql(table, ["ver"], ["t.xmin = v.ver::xid"], [...rowKeys, versions, ...next]);
}

/**
 * `versions` (the xmin of each row as read) is required when a column keeps its key id inside the
 * value: the database cannot re-check "still encrypted" there, so the row must be unchanged.
 */
export function deleteBatchSql(table: EncryptedTable, rowKeys: unknown[][], versions?: unknown[]): SqlStatement {
  const unchanged = table.columns.some((column) => column.keyIdColumn === undefined);
  if (unchanged && versions === undefined) throw new Error(`deleting from ${table.ref.name} needs the row versions`);
  const aliases = [...table.rowKey.map((_, index) => `k${index}`), ...(unchanged ? ["ver"] : [])];
  const from = `unnest(${aliases.map((_, index) => `$${index + 1}::text[]`).join(", ")}) AS v(${aliases.join(", ")})`;
  const match = [...table.rowKey.map((name, index) => `t.${quoteIdent(name)} = v.k${index}::${table.rowKeyTypes[index]}`), ...(unchanged ? ["t.xmin = v.ver::xid"] : [])];
  const stillEncrypted = `(${filterSql(table, { kind: "encrypted" }, "")})`;
  const keyValues = unchanged ? [...rowKeys, versions] : rowKeys;
  if (table.deletePolicy.action === "delete-row") {
    return {
      text: `DELETE FROM ${qualifiedTable(table)} AS t USING ${from} WHERE ${[...match, stillEncrypted].join(" AND ")}`,
      values: keyValues,
    };
  }
  const values: unknown[] = [...keyValues];
  const set = table.columns.flatMap((column) => {
    // ops/delete.ts refuses the clear policy for a column whose key id is inside the value.
    const keyIdColumn = keyIdColumnOf(column);
    const keyId = `t.${quoteIdent(keyIdColumn)}`;
    values.push(column.clearTo);
    const clearParam = `$${values.length}::text`;
    return [
      `${quoteIdent(column.column)} = CASE WHEN ${isPlaintextKeyId(keyId)} THEN t.${quoteIdent(column.column)} ELSE ${clearParam} END`,
      `${quoteIdent(keyIdColumn)} = CASE WHEN ${isPlaintextKeyId(keyId)} THEN ${keyId} ELSE NULL END`,
    ];
  });
  for (const timestampColumn of table.deletePolicy.setTimestampColumns) set.push(`${quoteIdent(timestampColumn)} = CURRENT_TIMESTAMP`);
  return {
    text: `UPDATE ${qualifiedTable(table)} AS t SET ${set.join(", ")} FROM ${from} WHERE ${[...match, stillEncrypted].join(" AND ")}`,
    values,
  };
}

/**
 * The census is a bare grouped count, the cheapest scan there is; the plaintext breakdown below
 * costs a second scan and is only taken when the count found plaintext rows.
 */
export function censusByKeySql(table: EncryptedTable, column: EncryptedColumn): SqlStatement {
  const keyId = `t.${quoteIdent(keyIdColumnOf(column))}`;
  return { text: `SELECT ${keyId} AS key_id, count(*) AS rows FROM ${qualifiedTable(table)} AS t GROUP BY 1`, values: [] };
}

export function censusSql(table: EncryptedTable, column: EncryptedColumn): SqlStatement {
  const value = `t.${quoteIdent(column.column)}`;
  const trimmed = `btrim(${value}, ${ASCII_WHITESPACE})`;
  const text =
    `SELECT count(*) AS rows, ` +
    `count(*) FILTER (WHERE ${value} IS NULL) AS nulls, ` +
    `count(*) FILTER (WHERE ${value} = '') AS empties, ` +
    `count(*) FILTER (WHERE ${trimmed} = '') AS blanks, ` +
    `count(*) FILTER (WHERE ${trimmed} = '{}') AS empty_objects ` +
    `FROM ${qualifiedTable(table)} AS t WHERE ${isPlaintextKeyId(`t.${quoteIdent(keyIdColumnOf(column))}`)}`;
  return { text, values: [] };
}

export function prefixCensusPostgresSql(table: EncryptedTable, column: EncryptedColumn, keys: KeyPrefixes[]): SqlStatement {
  return { text: prefixCensusSql(table, column, keys, qualifiedTable(table), postgresPrefixSql), values: [] };
}
