import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SqliteTestPath {
  path: string;
  cleanup(): void;
}

/** A database file path (not yet created) in a fresh directory, so -wal/-journal files are removed too. */
export function tempSqlitePath(label = "db"): SqliteTestPath {
  const dir = mkdtempSync(join(tmpdir(), "dbcrypt-sqlite-"));
  return {
    path: join(dir, `${safeLabel(label, 40)}.sqlite`),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Lowercase [a-z0-9_] only, so a label is safe in a file name and in an unquoted SQL identifier. */
export function safeLabel(label: string, maxLength: number): string {
  const cleaned = label.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
  return cleaned.slice(0, maxLength) || "db";
}
