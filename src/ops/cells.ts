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
 * cell (a cell it does not recognise is plaintext). Everything after this sees one shape.
 */
export async function readCells(dialect: DatabaseReader, scheme: ValueScheme, table: EncryptedTable, filter: BatchFilter, after: RowKey | undefined, limit: number): Promise<BatchRow[]> {
  const rows = await dialect.readBatch(table, filter, after, limit);
  if (table.columns.every((column) => column.keyIdColumn !== undefined)) return rows;
  for (const row of rows) {
    row.fields.forEach((field, index) => {
      if (table.columns[index]?.keyIdColumn !== undefined) return;
      field.keyId = field.value === null ? null : (scheme.keyIdOfCell?.(field.value) ?? null);
    });
  }
  return rows;
}
