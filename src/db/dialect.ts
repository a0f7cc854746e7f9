import type { RowContext } from "../crypto/schemes/value-scheme.js";
import type { CatalogTable, EncryptedColumn, EncryptedTable } from "../schema/model.js";
import type { KeyPrefixes } from "./prefix-census-sql.js";
import type { Partition } from "./partition.js";

/**
 * The interfaces ops and the runner see. Each database has exactly one implementation, and it is
 * the only place that writes SQL text for that database. Ops never ask which database they talk
 * to. A DatabaseReader has no method that writes, so code handed one (status, keys list, dry runs) cannot
 * write, as the compiler checks; a Dialect can do both.
 */

/** A row's key values, opaque outside the dialect (text on PostgreSQL, native values on SQLite). */
export type RowKey = readonly unknown[];

export interface StoredField {
  value: string | null;
  /** NULL and '' both mean plaintext, as in Coder. */
  keyId: string | null;
  /** Where a census opened the value by trial: the format the opening reported (its spelling). */
  format?: string;
}

export interface BatchRow {
  rowKey: RowKey;
  /**
   * A token that changes whenever the row changes (PostgreSQL's xmin), when the database has one.
   * Comparing it is the cheap compare-and-swap: no old values travel back to the server. It also
   * trips on changes to other columns, which only costs a retry.
   */
  version?: string;
  /** One per EncryptedTable.columns entry, in the same order. */
  fields: StoredField[];
  /** The table's context columns as text, by input name; absent when the table has none. */
  context?: RowContext;
}

/**
 * Which rows a batch read returns. For a column without a key-id column the database cannot tell
 * ciphertext from plaintext, so every non-NULL value of it counts as a candidate, and ops decide
 * with the scheme which rows need work.
 */
export type BatchFilter = (
  /** Rows with any value not under the key (encrypted under another key, or non-NULL plaintext). */
  | { kind: "not-under-key"; keyId: string }
  /** Rows with any encrypted value. */
  | { kind: "encrypted" }
  /** Every row (a census the database cannot take itself). */
  | { kind: "all" }
  /** Rows a prefix census (countByPrefix) did not account for: flagged unencrypted, or holding a value no key's prefix matches. */
  | { kind: "unmatched"; keys: KeyPrefixes[] }
) & {
  /** Only the rows of this part (--partition). */
  partition?: Partition;
};

export interface RowWrite {
  rowKey: RowKey;
  version?: string;
  /** The context as read: where there is no version, the write also requires it unchanged. */
  context?: RowContext;
  /** What was read: the write happens only if the row still holds exactly this. */
  expected: StoredField[];
  next: StoredField[];
  /** The table's row flag column after the write, where the table has one. */
  flag?: boolean;
}

export interface WriteOutcome {
  written: number;
  /** Rows that changed between read and write and were left alone. */
  conflicts: RowKey[];
}

export interface KeyRow {
  number: number;
  activeKeyDigest: string | null;
  revokedKeyDigest: string | null;
  createdAt: string | null;
  revokedAt: string | null;
  test: string;
}

export interface CensusGroup {
  /** null for plaintext (NULL or '' key id). */
  keyId: string | null;
  rows: number;
  /** The counts below are only filled for the plaintext group. */
  nulls: number;
  empties: number;
  blanks: number;
  emptyObjects: number;
}

/** One column's prefix census: values per key (in keys' order), NULLs, and matches per cell form. */
export interface PrefixCounts {
  byKey: number[];
  nulls: number;
  forms: { bare: number; "json-envelope": number };
}

export interface RunLock {
  release(): Promise<void>;
}

export interface DatabaseReader {
  /** Where we are connected, with any password removed. */
  readonly target: string;
  readonly keysTable: string;

  keysTableExists(): Promise<boolean>;
  readKeys(): Promise<KeyRow[]>;
  introspect(): Promise<CatalogTable[]>;
  census(table: EncryptedTable, column: EncryptedColumn): Promise<CensusGroup[]>;
  readBatch(table: EncryptedTable, filter: BatchFilter, after: RowKey | undefined, limit: number): Promise<BatchRow[]>;
  /**
   * For each column whose key id is a prefix of its values: values per key (in rows whose flag is
   * set, where the table has a flag) and NULLs in such rows, counted by the database in one scan.
   */
  countByPrefix(table: EncryptedTable, keys: KeyPrefixes[]): Promise<PrefixCounts[]>;
  /** Worst replay lag of any replica, where the database has replicas to ask about (PostgreSQL). */
  replicaLagMs?: () => Promise<number>;
  close(): Promise<void>;
}

export interface Dialect extends DatabaseReader {
  createKeysTable(): Promise<void>;
  /** Inserts an active row (number = max + 1) unless one for this id exists; returns the row. */
  insertActiveKey(keyId: string, canary: string): Promise<KeyRow>;
  /** Coder's swap update. Throws key_in_use when a foreign key still references the key. */
  revokeKey(keyId: string): Promise<"revoked" | "not-active">;
  writeBatch(table: EncryptedTable, writes: RowWrite[]): Promise<WriteOutcome>;
  /**
   * Applies the table's delete policy to rows that still hold an encrypted value. Where a column
   * keeps its key id inside the value, the database cannot tell that by itself, so such a row is
   * deleted only if it is still exactly as read (its version, or its values).
   */
  deleteBatch(table: EncryptedTable, rows: BatchRow[]): Promise<number>;
  /** One run at a time, or with `partition`, one run per part and none without a partition beside them. */
  acquireRunLock(command: string, partition?: Partition): Promise<RunLock>;
}
