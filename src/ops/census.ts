import { Keyring, UNIDENTIFIED_KEY_ID } from "../crypto/keyring.js";
import { rowFlagSet, type ValueScheme } from "../crypto/schemes/value-scheme.js";
import type { BatchFilter, BatchRow, CensusGroup, DatabaseReader, PrefixCounts, RowKey } from "../db/dialect.js";
import { matchesKeyPrefix } from "../db/prefix-census-sql.js";
import { isBlank, isEmptyObject } from "../schema/plaintext-rule.js";
import { isPlaintextField, prepareToOpen, readCells } from "./cells.js";
import { BatchByteBudget, DEFAULT_BATCH_BYTES } from "./batch-budget.js";
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

/** Rows per read when a census has to read values (key ids inside them). */
const CENSUS_SCAN_BATCH = 1000;

/**
 * `keyring` matters only where the scheme stores no key id: each value is then opened by trial to
 * learn its key, and one no supplied key opens counts under UNIDENTIFIED_KEY_ID (without keys,
 * every encrypted value does). `countedKeyIds` are the keys the database may count by value
 * prefix, where the scheme allows (all of the keyring's by default).
 */
export async function takeCensus(dialect: DatabaseReader, plan: SchemaPlan, keyring: Keyring = Keyring.empty(), countedKeyIds: readonly string[] = keyring.ids): Promise<Census> {
  const columns: ColumnCensus[] = [];
  for (const table of plan.tables) {
    const scanned = table.columns.some((column) => column.keyIdColumn === undefined) ? await censusOfValues(dialect, plan.scheme, table, keyring, countedKeyIds) : undefined;
    for (const [index, column] of table.columns.entries()) {
      const groups = column.keyIdColumn === undefined ? (scanned?.[index] ?? []) : await dialect.census(table, column);
      columns.push(summarize(table, column, groups));
    }
  }
  return { columns };
}

/**
 * Where key ids are prefixes of the values and the scheme can spell them out (Kubernetes), the
 * database counts the values under each supplied key in one scan (db/prefix-census-sql.ts), and
 * only the rows it could not account for (plaintext, identity, unknown keys) are read and named
 * here. Otherwise every row is read.
 */
async function censusOfValues(dialect: DatabaseReader, scheme: ValueScheme, table: EncryptedTable, keyring: Keyring, countedKeyIds: readonly string[]): Promise<CensusGroup[][]> {
  const keys = scheme.cellPrefixes === undefined ? [] : countedKeyIds.flatMap((keyId) => {
    const prefixes = scheme.cellPrefixes?.(keyId);
    return prefixes === undefined ? [] : [{ keyId, prefixes }];
  });
  if (keys.length === 0) return scanCensus(dialect, scheme, table, keyring, { kind: "all" }, () => false, []);
  const counted = await dialect.countByPrefix(table, keys);
  // The same test as the SQL: a field of a row whose flag is set that is NULL or matches a key.
  const countedBySql = (row: BatchRow, value: string | null) => rowFlagSet(row.context) && (value === null || keys.some((key) => matchesKeyPrefix(value, key)));
  // The cells the database counted still tell the column's spelling (bare or enveloped).
  const spellings = counted.map((column) => new Map(Object.entries(column.forms).filter(([, count]) => count > 0)));
  const rest = await scanCensus(dialect, scheme, table, keyring, { kind: "unmatched", keys }, countedBySql, spellings);
  return rest.map((groups, index) => {
    const column = counted[index] as PrefixCounts;
    const merged = new Map<string | null, CensusGroup>(groups.map((group) => [group.keyId, { ...group }]));
    keys.forEach((key, keyIndex) => {
      const rows = column.byKey[keyIndex] ?? 0;
      if (rows === 0) return;
      const group = merged.get(key.keyId) ?? { keyId: key.keyId, rows: 0, nulls: 0, empties: 0, blanks: 0, emptyObjects: 0 };
      group.rows += rows;
      merged.set(key.keyId, group);
    });
    if (column.nulls > 0) {
      const plaintext = merged.get(null) ?? { keyId: null, rows: 0, nulls: 0, empties: 0, blanks: 0, emptyObjects: 0 };
      plaintext.rows += column.nulls;
      plaintext.nulls += column.nulls;
      merged.set(null, plaintext);
    }
    return [...merged.values()];
  });
}


/**
 * The census of columns whose key ids are inside the values, which the database cannot group by:
 * every row `filter` selects is read once, in keyset batches (memory stays flat), and the scheme
 * names each value's key; fields `skip` says were counted already are passed over. The plaintext
 * counts follow the same rules as the SQL census (plaintext-rule.ts).
 */
async function scanCensus(
  dialect: DatabaseReader,
  scheme: ValueScheme,
  table: EncryptedTable,
  keyring: Keyring,
  filter: BatchFilter,
  skip: (row: BatchRow, value: string | null) => boolean,
  spellingsCounted: Map<string, number>[],
): Promise<CensusGroup[][]> {
  const byColumn = table.columns.map((_, index) => ({ keys: new Map<string, number>(), spellings: new Map(spellingsCounted[index] ?? []), plaintext: { rows: 0, nulls: 0, empties: 0, blanks: 0, emptyObjects: 0 } }));
  let after: RowKey | undefined;
  // Bounded by bytes as a run's batches are: a table of 256 KiB values is read a few rows at a time.
  const budget = new BatchByteBudget(DEFAULT_BATCH_BYTES);
  for (;;) {
    const limit = budget.rowsFor(CENSUS_SCAN_BATCH);
    const rows = await readCells(dialect, scheme, table, filter, after, limit, keyring);
    budget.observe(rows);
    // Where keys sit behind a service, what the run will need to open is fetched now, while the
    // census runs: a service that fails does so before anything is written.
    await prepareToOpen(scheme, table, rows);
    for (const row of rows) {
      row.fields.forEach((field, index) => {
        const tally = byColumn[index];
        if (tally === undefined || skip(row, field.value)) return;
        if (!isPlaintextField(field)) {
          tally.keys.set(field.keyId as string, (tally.keys.get(field.keyId as string) ?? 0) + 1);
          for (const token of scheme.spellingEvidence?.(field.value as string, field.format) ?? []) tally.spellings.set(token, (tally.spellings.get(token) ?? 0) + 1);
          return;
        }
        const plaintext = tally.plaintext;
        plaintext.rows++;
        if (field.value === null) plaintext.nulls++;
        else {
          if (field.value === "") plaintext.empties++;
          if (isBlank(field.value)) plaintext.blanks++;
          if (isEmptyObject(field.value)) plaintext.emptyObjects++;
        }
      });
    }
    if (rows.length < limit) break;
    after = rows[rows.length - 1]?.rowKey;
  }
  // The census is where the column's spelling is learned; the rewrite that follows writes in it.
  byColumn.forEach(({ spellings }, index) => {
    const column = table.columns[index];
    if (column !== undefined && scheme.columnSpelling !== undefined) {
      const learned = scheme.columnSpelling(spellings);
      if (learned !== undefined) column.spelling = learned;
    }
  });
  return byColumn.map(({ keys, plaintext }) => [
    ...[...keys].map(([keyId, rows]) => ({ keyId, rows, nulls: 0, empties: 0, blanks: 0, emptyObjects: 0 })),
    ...(plaintext.rows > 0 ? [{ keyId: null, ...plaintext }] : []),
  ]);
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

/**
 * Values that may be under the key: its own, plus, for a key the census did not try (it was not
 * supplied), any value no supplied key opened, since that could be under it. A supplied key was
 * tried on every such value and opened none, so they are not under it. A key is never revoked
 * while a value might still need it.
 */
export function rowsUnderKey(census: Census, keyId: string, tried: Keyring): number {
  const unidentified = tried.has(keyId) ? 0 : 1;
  return census.columns.reduce((sum, column) => sum + (column.encryptedByKeyId.get(keyId) ?? 0) + unidentified * (column.encryptedByKeyId.get(UNIDENTIFIED_KEY_ID) ?? 0), 0);
}
