import { TRIAL_KEY_ID, UNIDENTIFIED_KEY_ID, type Keyring } from "../crypto/keyring.js";
import type { RowContext, ValueScheme } from "../crypto/schemes/value-scheme.js";
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
  if (table.aad !== undefined) for (const row of rows) row.context = withAdditionalData(table.aad, row.context ?? {});
  if (table.columns.every((column) => column.keyIdColumn !== undefined)) return rows;
  for (const row of rows) {
    row.fields.forEach((field, index) => {
      if (table.columns[index]?.keyIdColumn !== undefined) return;
      if (field.value === null) {
        field.keyId = null;
        return;
      }
      const identified = keyIdInValue(scheme, field.value, row, identifyBy);
      field.keyId = identified.keyId;
      if (identified.format !== undefined) field.format = identified.format;
    });
  }
  return rows;
}

/**
 * Fetches what opening a batch's cells needs, for schemes whose keys sit behind a service (a KMS
 * plugin's Decrypt of each new DEK source): one call per batch, before any cell is opened.
 */
export async function prepareToOpen(scheme: ValueScheme, table: EncryptedTable, rows: readonly BatchRow[]): Promise<void> {
  if (scheme.prepareCells === undefined) return;
  const cells: string[] = [];
  for (const row of rows) {
    row.fields.forEach((field, index) => {
      if (field.value !== null && table.columns[index]?.keyIdColumn === undefined) cells.push(field.value);
    });
  }
  await scheme.prepareCells(cells);
}

/**
 * The row's additional data from the table's template (`users.obot.obot.ai/{hashed_username}`),
 * as input `aad`, and its legacy forms as `aad.1`, `aad.2`… A NULL column renders as '', as Go's
 * zero value does.
 */
function withAdditionalData(aad: NonNullable<EncryptedTable["aad"]>, context: RowContext): RowContext {
  const rendered: Record<string, string | null> = { ...context, aad: render(compiled(aad.template), context) };
  aad.fallbacks.forEach((template, index) => { rendered[`aad.${index + 1}`] = render(compiled(template), context); });
  return rendered;
}

/** A template as alternating literal text and column names, split once rather than per row. */
const compiledTemplates = new Map<string, string[]>();
function compiled(template: string): string[] {
  let parts = compiledTemplates.get(template);
  if (parts === undefined) {
    parts = template.split(/\{([^{}]+)\}/);
    compiledTemplates.set(template, parts);
  }
  return parts;
}

function render(parts: string[], context: RowContext): string {
  let text = "";
  for (let index = 0; index < parts.length; index++) text += index % 2 === 0 ? parts[index] : (context[`column:${parts[index]}`] ?? "");
  return text;
}

function keyIdInValue(scheme: ValueScheme, value: string, row: BatchRow, identifyBy: Keyring | undefined): { keyId: string | null; format?: string } {
  if (scheme.keyIdSource !== "trial") return { keyId: scheme.keyIdOfCell?.(value, row.context) ?? null };
  if (!(scheme.looksSealed?.(value) ?? false)) return { keyId: null };
  if (identifyBy === undefined) return { keyId: TRIAL_KEY_ID };
  const found = identifyBy.identifyByTrial(value, row.context);
  if (found === undefined) return { keyId: UNIDENTIFIED_KEY_ID };
  return found.format === undefined ? { keyId: found.key.id } : { keyId: found.key.id, format: found.format };
}
