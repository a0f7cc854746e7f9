import type { EncryptedTable } from "../schema/model.js";
import { quoteIdent } from "./identifiers.js";

/**
 * `--partition I/N`: part I (0-based, as Kubernetes' JOB_COMPLETION_INDEX) of N disjoint parts of
 * every table, so N processes can work through one database together. A row belongs to the part
 * its row key hashes to. A hash, rather than ranges of the key, because every process must agree
 * on the parts without talking to each other, whatever the key's type and however rows are
 * inserted meanwhile: a row's key, and so its part, never changes.
 */
export interface Partition {
  index: number;
  count: number;
}

export const MAX_PARTITIONS = 1024;

/** `I/N`, or undefined when the text is not one (I < N <= MAX_PARTITIONS). */
export function partitionFromText(text: string): Partition | undefined {
  const match = /^([0-9]+)\/([0-9]+)$/.exec(text);
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  return match === null || count < 1 || count > MAX_PARTITIONS || index >= count ? undefined : { index, count };
}

export function partitionLabel(partition: Partition): string {
  return `${partition.index}/${partition.count}`;
}

/** The separator between a composite key's columns in the hashed text: a control character no key text is likely to use. */
const KEY_SEPARATOR_SQL = "E'\\x1f'";
export const KEY_SEPARATOR = "\x1f";

/**
 * PostgreSQL: the row's part from hashtextextended of its key as text. abs(mod(h, N)) is in
 * [0, N) whatever h's sign, which is all a partition needs.
 */
export function postgresPartitionSql(table: EncryptedTable, partition: Partition, alias: string): string {
  const key = table.rowKey.map((name) => `${alias}${quoteIdent(name)}::text`);
  const text = key.length === 1 ? key[0] : `concat_ws(${KEY_SEPARATOR_SQL}, ${key.join(", ")})`;
  return `abs(mod(hashtextextended(${text}, 0), ${partition.count})) = ${partition.index}`;
}

/** SQLite: the same idea through a function the dialect registers on its connection (sqlitePartitionOf). */
export const SQLITE_PARTITION_FUNCTION = "dbcrypt_partition";

export function sqlitePartitionSql(table: EncryptedTable, partition: Partition): string {
  return `${SQLITE_PARTITION_FUNCTION}(${partition.count}, ${table.rowKey.map(quoteIdent).join(", ")}) = ${partition.index}`;
}

/** FNV-1a (32-bit) of the key's text, mod N: deterministic, and spread well enough for a few parts. */
export function sqlitePartitionOf(count: number, keyParts: readonly unknown[]): number {
  const text = keyParts.map((part) => (part instanceof Uint8Array ? Buffer.from(part).toString("hex") : String(part))).join(KEY_SEPARATOR);
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, "utf8")) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % count;
}
