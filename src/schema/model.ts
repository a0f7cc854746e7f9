import type { ValueScheme } from "../crypto/schemes/value-scheme.js";

/** What the catalog says about one table, as far as dbcrypt cares. Filled in by a dialect. */
export interface CatalogColumn {
  name: string;
  /** The database's own spelling of the type (format_type on PostgreSQL, declared type on SQLite). */
  dataType: string;
  isText: boolean;
  nullable: boolean;
}

export interface CatalogTable {
  /** undefined on SQLite, which has one namespace per file for our purposes. */
  schema: string | undefined;
  name: string;
  columns: CatalogColumn[];
  primaryKey: string[] | undefined;
  /** Unique indexes whose columns are all NOT NULL: usable when there is no primary key. */
  uniqueNotNullKeys: string[][];
  /** Columns with a foreign key to the keys table's active_key_digest, with the constraint name. */
  keysTableForeignKeys: { column: string; constraint: string }[];
}

export interface TableRef {
  schema: string | undefined;
  name: string;
}

export function tableLabel(ref: TableRef): string {
  return ref.schema === undefined || ref.schema === "public" ? ref.name : `${ref.schema}.${ref.name}`;
}

/**
 * Which plaintext values a write operation leaves as plaintext (NULL key id) instead of encrypting.
 * NULL values are never encrypted under any rule.
 *  - never: every non-NULL value is encrypted, even ''
 *  - empty: '' stays plaintext (Coder's gitsshkeys after a delete)
 *  - blank: whitespace-only stays plaintext (Coder's AI and MCP secrets)
 *  - blank-or-empty-object: blank or '{}' stays plaintext (Coder's chat_mcp_servers.headers)
 */
export type PlaintextRule = "never" | "empty" | "blank" | "blank-or-empty-object";

export interface EncryptedColumn {
  column: string;
  /**
   * The sibling column holding each value's key id, for schemes whose key ids live in a column
   * (Coder). undefined when the scheme keeps the key id inside the value (or stores none): the
   * database then cannot tell ciphertext from plaintext, and ops ask the scheme, row by row.
   */
  keyIdColumn: string | undefined;
  keepPlaintext: PlaintextRule;
  /** What `delete` writes in place of an encrypted value when the table's policy is "clear". */
  clearTo: string | null;
  /** Where dbcrypt learned about this column. */
  source: "foreign-key" | "naming-rule" | "config";
  /**
   * How the column's cells are spelt, where the scheme has several spellings (ValueScheme
   * .spellingsOf): set by the census from the cells it read, used when writing the column.
   */
  spelling?: string;
  /** The same, fixed by the config (`cellFormat`): wins over what the census learns. */
  cellFormat?: string;
}

/** The key-id column of a column that has one; census and clear SQL exist only for those. */
export function keyIdColumnOf(column: { column: string; keyIdColumn: string | undefined }): string {
  if (column.keyIdColumn === undefined) throw new Error(`${column.column} has no key-id column; its census is taken by reading its values`);
  return column.keyIdColumn;
}

export type DeletePolicy =
  | { action: "delete-row" }
  | { action: "clear"; setTimestampColumns: string[] };

export interface EncryptedTable {
  ref: TableRef;
  /** Columns that address one row: the primary key, or a unique NOT NULL key when there is none. */
  rowKey: string[];
  /** Database type of each rowKey column, for casts when row keys travel as text. */
  rowKeyTypes: string[];
  columns: EncryptedColumn[];
  deletePolicy: DeletePolicy;
  /**
   * Columns read with every row for the scheme's RowContext (a workspace id, the parts of an
   * AAD), by the scheme's input name. They are never written; a write happens only while they
   * still hold what was read, since a cell sealed for another workspace could not be opened.
   */
  context: { input: string; column: string }[];
  /** Additional data built per row from context columns (Obot's AAD strings), and its legacy forms. */
  aad?: { template: string; fallbacks: string[] };
  /** The boolean column saying whether the row's values are encrypted; rotate sets it, decrypt clears it. */
  rowFlag?: string;
}

export interface RefusedTable {
  ref: TableRef;
  columns: string[];
  reason: string;
}

/**
 * Something about an encrypted column the operator should check, though it does not stop any
 * command: today, a column the Coder preset does not know, whose plaintext rule is a default.
 */
export interface SchemaWarning {
  ref: TableRef;
  column: string;
  /** Starts with `<table>.<column>:`, so it reads on its own. */
  message: string;
}

export interface SchemaPlan {
  tables: EncryptedTable[];
  refused: RefusedTable[];
  warnings: SchemaWarning[];
  preset: "coder" | "atelyaos" | "company-agents" | "obot" | "none";
  /** How every encrypted cell is stored: format, key ids, cipher, canary. */
  scheme: ValueScheme;
}
