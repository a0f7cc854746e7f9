import type { CensusGroup, DatabaseReader } from "../db/dialect.js";
import type { EncryptedColumn, EncryptedTable, PlaintextRule, SchemaPlan } from "../schema/model.js";
import { tableLabel } from "../schema/model.js";

/** What one grouped scan says about one encrypted column. No value is decrypted to take it. */
export interface ColumnCensus {
  table: EncryptedTable;
  column: EncryptedColumn;
  label: string;
  /** Rows per key id, encrypted values only. */
  encryptedByKeyId: Map<string, number>;
  plaintext: { total: number; nulls: number; toEncrypt: number; keptPlaintext: number };
}

export interface Census {
  columns: ColumnCensus[];
}

export async function takeCensus(dialect: DatabaseReader, plan: SchemaPlan): Promise<Census> {
  const columns: ColumnCensus[] = [];
  for (const table of plan.tables) {
    for (const column of table.columns) {
      columns.push(summarize(table, column, await dialect.census(table, column)));
    }
  }
  return { columns };
}

function summarize(table: EncryptedTable, column: EncryptedColumn, groups: CensusGroup[]): ColumnCensus {
  const encryptedByKeyId = new Map<string, number>();
  let plaintextGroup: CensusGroup | undefined;
  for (const group of groups) {
    if (group.keyId === null) plaintextGroup = group;
    else encryptedByKeyId.set(group.keyId, (encryptedByKeyId.get(group.keyId) ?? 0) + group.rows);
  }
  const total = plaintextGroup?.rows ?? 0;
  const nulls = plaintextGroup?.nulls ?? 0;
  const kept = plaintextGroup ? keptByRule(column.keepPlaintext, plaintextGroup) : 0;
  return {
    table,
    column,
    label: `${tableLabel(table.ref)}.${column.column}`,
    encryptedByKeyId,
    plaintext: { total, nulls, toEncrypt: total - nulls - kept, keptPlaintext: kept },
  };
}

/** Non-NULL plaintext values the rule leaves as plaintext, from the census's SQL-side counts. */
function keptByRule(rule: PlaintextRule, group: CensusGroup): number {
  switch (rule) {
    case "never":
      return 0;
    case "empty":
      return group.empties;
    case "blank":
      return group.blanks;
    case "blank-or-empty-object":
      return group.blanks + group.emptyObjects;
  }
}

/** Every key id that encrypts at least one value, with the columns and counts that use it. */
export function usageByKeyId(census: Census): Map<string, { label: string; rows: number }[]> {
  const usage = new Map<string, { label: string; rows: number }[]>();
  for (const column of census.columns) {
    for (const [keyId, rows] of column.encryptedByKeyId) {
      const list = usage.get(keyId) ?? [];
      list.push({ label: column.label, rows });
      usage.set(keyId, list);
    }
  }
  return usage;
}

export function rowsUnderKey(census: Census, keyId: string): number {
  return census.columns.reduce((sum, column) => sum + (column.encryptedByKeyId.get(keyId) ?? 0), 0);
}
