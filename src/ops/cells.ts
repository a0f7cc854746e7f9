import { TRIAL_KEY_ID, UNIDENTIFIED_KEY_ID, type Keyring } from "../crypto/keyring.js";
import type { ValueScheme } from "../crypto/schemes/value-scheme.js";
import type { BatchFilter, BatchRow, DatabaseReader, RowKey, StoredField } from "../db/dialect.js";
import type { EncryptedTable } from "../schema/model.js";

/** NULL and '' both mean plaintext, as in Coder: the one place ops decide it. */
export function isPlaintextField(field: StoredField): boolean {
  return field.keyId === null || field.keyId === "";
}

/**
 * Reads one batch and gives every field its key id. A column with a key-id column has it from the
 * database; for one whose scheme keeps the key id inside the value, the scheme reads it from the
 * cell (a cell it does not recognise is plaintext). Where the scheme stores no key id at all, a
 * cell of ciphertext shape gets TRIAL_KEY_ID, to be opened by trial later; with `identifyBy` (a
 * census), the trial happens here and the field gets the id of the key that opened it, or
 * UNIDENTIFIED_KEY_ID. Everything after this sees one shape.
 */
export async function readCells(dialect: DatabaseReader, scheme: ValueScheme, table: EncryptedTable, filter: BatchFilter, after: RowKey | undefined, limit: number, identifyBy?: Keyring): Promise<BatchRow[]> {
  const rows = await dialect.readBatch(table, filter, after, limit);
  if (table.columns.every((column) => column.keyIdColumn !== undefined)) return rows;
  for (const row of rows) {
    row.fields.forEach((field, index) => {
      if (table.columns[index]?.keyIdColumn !== undefined) return;
      field.keyId = field.value === null ? null : keyIdInValue(scheme, field.value, row, identifyBy);
    });
  }
  return rows;
}

function keyIdInValue(scheme: ValueScheme, value: string, row: BatchRow, identifyBy: Keyring | undefined): string | null {
  if (scheme.keyIdSource !== "trial") return scheme.keyIdOfCell?.(value) ?? null;
  if (!(scheme.looksSealed?.(value) ?? false)) return null;
  if (identifyBy === undefined) return TRIAL_KEY_ID;
  return identifyBy.openByTrial(value, row.context).key?.id ?? UNIDENTIFIED_KEY_ID;
}
