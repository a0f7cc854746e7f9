import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { DbcryptError, type ErrorSubject } from "../errors.js";
import type { CatalogTable, EncryptedColumn, EncryptedTable } from "../schema/model.js";
import { tableLabel } from "../schema/model.js";
import { toDbcryptError } from "./database-errors.js";
import type { BatchFilter, BatchRow, CensusGroup, Dialect, KeyRow, PrefixCounts, RowKey, RowWrite, RunLock, WriteOutcome } from "./dialect.js";
import type { KeyPrefixes } from "./prefix-census-sql.js";
import {
  createKeysTableSqliteSql,
  insertKeySql,
  revokeKeySql,
  selectKeyByDigestSql,
  selectKeysSql,
  sqlitePlaceholder,
} from "./keys-table-sql.js";
import { acquireDatabaseLock } from "./lock-file.js";
import { hasPlaintext, toCensusGroups } from "./census-groups.js";
import { censusByKeySqlite, censusSqlite, deleteRowSqlite, nullKeyProbeSqlite, selectBatchSqlite, updateRowSqlite, prefixCensusSqlite } from "./sqlite-sql.js";
import { SQLITE_PARTITION_FUNCTION, sqlitePartitionOf, type Partition } from "./partition.js";

export interface SqliteOptions {
  readOnly: boolean;
  busyTimeoutMs: number;
}

export { DEFAULT_SQLITE_BUSY_TIMEOUT_MS } from "./session-limits.js";

export class SqliteDialect implements Dialect {
  readonly target: string;
  readonly keysTable: string;
  readonly #path: string;
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();

  private constructor(path: string, keysTable: string, db: Database.Database) {
    this.#path = path;
    this.target = path;
    this.keysTable = keysTable;
    this.#db = db;
  }

  /** Never creates a file: a typo in a path must not produce an empty database. */
  static open(path: string, keysTable: string, options: SqliteOptions): SqliteDialect {
    const absolute = resolve(path);
    if (!existsSync(absolute)) {
      throw new DbcryptError("database_not_found", `SQLite database ${path} does not exist`, { hint: "check the path given to --db" });
    }
    if (!statSync(absolute).isFile()) throw new DbcryptError("database_not_found", `${path} is not a file`, { hint: "check the path given to --db" });
    if (!options.readOnly) requireWritable(absolute);
    let db: Database.Database;
    try {
      db = new Database(absolute, { readonly: options.readOnly, fileMustExist: true, timeout: options.busyTimeoutMs });
      db.pragma("foreign_keys = ON");
      db.function(SQLITE_PARTITION_FUNCTION, { deterministic: true, varargs: true, safeIntegers: true }, (count, ...keyParts) => sqlitePartitionOf(Number(count), keyParts));
      db.prepare("SELECT count(*) FROM sqlite_schema").get();
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      // A file another connection holds exclusively is busy, not broken: say so, and that waiting helps.
      if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") {
        throw new DbcryptError("database_error", `cannot open SQLite database ${path}: another connection held it locked past the busy timeout [${code}]`, {
          hint: "retry when the application's write transaction ends, or raise --busy-timeout",
          cause: error,
          subject: { sqliteCode: code },
        });
      }
      throw new DbcryptError("database_unreachable", `cannot open SQLite database ${path}: ${(error as Error).message}`, {
        hint: "check that the file is a SQLite database and is not corrupt",
        cause: error,
        subject: typeof code === "string" ? { sqliteCode: code } : {},
      });
    }
    return new SqliteDialect(absolute, keysTable, db);
  }

  async keysTableExists(): Promise<boolean> {
    const row = this.#run(() => this.#db.prepare("SELECT 1 AS found FROM sqlite_schema WHERE type = 'table' AND name = ?").get(this.keysTable), "look for the keys table");
    return row !== undefined;
  }

  async createKeysTable(): Promise<void> {
    this.#run(() => this.#db.transaction(() => {
      for (const statement of createKeysTableSqliteSql(this.keysTable)) this.#db.exec(statement);
    }).immediate(), "create the keys table");
  }

  async readKeys(): Promise<KeyRow[]> {
    return this.#run(() => this.#db.prepare(selectKeysSql(this.keysTable)).all() as RawKeyRow[], "read the keys table").map(toKeyRow);
  }

  async insertActiveKey(keyId: string, canary: string): Promise<KeyRow> {
    return this.#run(() => this.#db.transaction(() => {
      const select = this.#db.prepare(selectKeyByDigestSql(this.keysTable, sqlitePlaceholder));
      const existing = select.get({ p1: keyId }) as RawKeyRow | undefined;
      if (existing !== undefined) return toKeyRow(existing);
      this.#db.prepare(insertKeySql(this.keysTable, sqlitePlaceholder)).run({ p1: keyId, p2: canary });
      return toKeyRow(select.get({ p1: keyId }) as RawKeyRow);
    }).immediate(), "insert key row");
  }

  async revokeKey(keyId: string): Promise<"revoked" | "not-active"> {
    try {
      const result = this.#db.prepare(revokeKeySql(this.keysTable, sqlitePlaceholder)).run({ p1: keyId });
      return result.changes === 1 ? "revoked" : "not-active";
    } catch (error) {
      if ((error as { code?: string }).code === "SQLITE_CONSTRAINT_FOREIGNKEY") {
        throw new DbcryptError("key_in_use", `key ${keyId} cannot be revoked: a foreign key still references it`, {
          hint: "run rotate or decrypt with this key first; `dbcrypt status` shows which values use it",
          subject: { keyId, sqliteCode: "SQLITE_CONSTRAINT_FOREIGNKEY" },
        });
      }
      // Losing to another writer's lock must read (and retry) like any other statement's busy error.
      throw this.#describe(error, `revoke key ${keyId}`, { keyId });
    }
  }

  async introspect(): Promise<CatalogTable[]> {
    return this.#run(() => {
      // Only SQLite's own sqlite_* tables are skipped. In LIKE, '_' matches any character, so an
      // unescaped 'sqlite_%' also hid user tables such as "sqliteX…" and left them unprocessed.
      const names = this.#db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name").pluck().all() as string[];
      return names.map((name) => this.#describeTable(name));
    }, "read the schema");
  }

  #describeTable(name: string): CatalogTable {
    const columns = this.#db.prepare("SELECT name, type, \"notnull\" AS not_null, pk FROM pragma_table_info(?)").all(name) as { name: string; type: string; not_null: number; pk: number }[];
    const primaryKey = columns.filter((column) => column.pk > 0).sort((a, b) => a.pk - b.pk).map((column) => column.name);
    const notNull = new Set(columns.filter((column) => column.not_null === 1 || (column.pk > 0 && /^integer$/i.test(column.type) && primaryKey.length === 1)).map((column) => column.name));
    const indexes = this.#db.prepare("SELECT name FROM pragma_index_list(?) WHERE \"unique\" = 1 AND partial = 0 AND origin <> 'pk'").pluck().all(name) as string[];
    const uniqueNotNullKeys = indexes
      .map((index) => this.#db.prepare("SELECT name FROM pragma_index_info(?) ORDER BY seqno").pluck().all(index) as (string | null)[])
      .filter((indexColumns): indexColumns is string[] => indexColumns.every((column) => column !== null && notNull.has(column)));
    const foreignKeys = this.#db.prepare("SELECT id, \"from\" AS from_column, \"to\" AS to_column, \"table\" AS parent FROM pragma_foreign_key_list(?)").all(name) as { id: number; from_column: string; to_column: string | null; parent: string }[];
    const columnsPerForeignKey = new Map<number, number>();
    for (const foreignKey of foreignKeys) columnsPerForeignKey.set(foreignKey.id, (columnsPerForeignKey.get(foreignKey.id) ?? 0) + 1);
    return {
      schema: undefined,
      name,
      columns: columns.map((column) => ({ name: column.name, dataType: column.type, isText: hasTextAffinity(column.type), nullable: !notNull.has(column.name) })),
      primaryKey: primaryKey.length > 0 && !this.#keyHoldsNull(name, primaryKey.filter((column) => !notNull.has(column)))
        ? primaryKey
        : undefined,
      uniqueNotNullKeys,
      keysTableForeignKeys: foreignKeys
        .filter((foreignKey) => foreignKey.parent === this.keysTable && foreignKey.to_column === "active_key_digest" && columnsPerForeignKey.get(foreignKey.id) === 1)
        .map((foreignKey) => ({ column: foreignKey.from_column, constraint: `${name}.${foreignKey.from_column} -> ${this.keysTable}.active_key_digest` })),
    };
  }

  /**
   * SQLite, unlike PostgreSQL, lets a rowid table's PRIMARY KEY columns hold NULL unless they are
   * declared NOT NULL. A row with a NULL key part cannot be addressed (NULL = NULL is not true) and
   * ends a keyset walk early (a comparison with NULL is never true), silently skipping the rows
   * after it. Such a key is not used: the table needs another unique NOT NULL key, or is refused.
   */
  #keyHoldsNull(table: string, nullableColumns: string[]): boolean {
    if (nullableColumns.length === 0) return false;
    return this.#db.prepare(nullKeyProbeSqlite(table, nullableColumns)).get() !== undefined;
  }

  async census(table: EncryptedTable, column: EncryptedColumn): Promise<CensusGroup[]> {
    const doing = `census ${tableLabel(table.ref)}.${column.column}`;
    const subject = { table: tableLabel(table.ref), column: column.column };
    const counts = (this.#run(() => this.#prepare(censusByKeySqlite(table, column)).all(), doing, subject) as { key_id: unknown; rows: number }[])
      .map((row) => ({ keyId: row.key_id === null ? null : String(row.key_id), rows: row.rows }));
    if (!hasPlaintext(counts)) return toCensusGroups(counts, undefined);
    const row = this.#run(() => this.#prepare(censusSqlite(table, column)).get(), doing, subject) as { rows: number; nulls: number; empties: number; blanks: number; empty_objects: number } | undefined;
    return toCensusGroups(counts, row && { rows: row.rows, nulls: row.nulls, empties: row.empties, blanks: row.blanks, emptyObjects: row.empty_objects });
  }

  async countByPrefix(table: EncryptedTable, keys: KeyPrefixes[]): Promise<PrefixCounts[]> {
    return table.columns.map((column) => {
      const row = this.#run(() => this.#prepare(prefixCensusSqlite(table, column, keys)).raw(true).get() as unknown[], `census ${tableLabel(table.ref)}.${column.column}`, { table: tableLabel(table.ref), column: column.column });
      return { nulls: Number(row[0] ?? 0), forms: { bare: Number(row[1] ?? 0), "json-envelope": Number(row[2] ?? 0) }, byKey: keys.map((_, index) => Number(row[index + 3] ?? 0)) };
    });
  }

  async readBatch(table: EncryptedTable, filter: BatchFilter, after: RowKey | undefined, limit: number): Promise<BatchRow[]> {
    const statement = this.#prepare(selectBatchSqlite(table, filter, after !== undefined));
    const parameters: Record<string, unknown> = { limit };
    if (filter.kind === "not-under-key") parameters.target = filter.keyId;
    after?.forEach((value, index) => { parameters[`k${index}`] = value; });
    const rows = this.#run(() => statement.raw(true).safeIntegers(true).all(parameters) as unknown[][], `read ${tableLabel(table.ref)}`, { table: tableLabel(table.ref) });
    const keyWidth = table.rowKey.length;
    const contextAt = keyWidth + table.columns.length * 2;
    return rows.map((cells) => {
      const row: BatchRow = {
        rowKey: cells.slice(0, keyWidth),
        fields: table.columns.map((_, index) => ({
          value: textOrNull(cells[keyWidth + index * 2]),
          keyId: textOrNull(cells[keyWidth + index * 2 + 1]),
        })),
      };
      if (table.context.length > 0) row.context = Object.fromEntries(table.context.map((input, index) => [input.input, textOrNull(cells[contextAt + index])]));
      return row;
    });
  }

  async writeBatch(table: EncryptedTable, writes: RowWrite[]): Promise<WriteOutcome> {
    if (writes.length === 0) return { written: 0, conflicts: [] };
    const statement = this.#prepare(updateRowSqlite(table));
    return this.#run(() => this.#db.transaction(() => {
      const conflicts: RowKey[] = [];
      let written = 0;
      for (const write of writes) {
        const parameters: Record<string, unknown> = {};
        write.rowKey.forEach((value, index) => { parameters[`k${index}`] = value; });
        write.expected.forEach((field, index) => { parameters[`ov${index}`] = field.value; parameters[`ok${index}`] = field.keyId; });
        table.context.forEach((input, index) => { parameters[`cx${index}`] = write.context?.[input.input] ?? null; });
        if (table.rowFlag !== undefined) parameters.nf = write.flag === undefined ? null : write.flag ? 1 : 0;
        write.next.forEach((field, index) => { parameters[`nv${index}`] = field.value; parameters[`nk${index}`] = field.keyId; });
        if (statement.run(parameters).changes === 1) written++;
        else conflicts.push(write.rowKey);
      }
      return { written, conflicts };
    }).immediate(), `write ${tableLabel(table.ref)}`, { table: tableLabel(table.ref) });
  }

  async deleteBatch(table: EncryptedTable, rows: BatchRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    const statement = this.#prepare(deleteRowSqlite(table));
    return this.#run(() => this.#db.transaction(() => {
      let changed = 0;
      for (const row of rows) {
        const parameters: Record<string, unknown> = {};
        row.rowKey.forEach((value, index) => { parameters[`k${index}`] = value; });
        row.fields.forEach((field, index) => { parameters[`ov${index}`] = field.value; });
        if (table.deletePolicy.action === "clear") table.columns.forEach((column, index) => { parameters[`c${index}`] = column.clearTo; });
        changed += statement.run(parameters).changes;
      }
      return changed;
    }).immediate(), `delete from ${tableLabel(table.ref)}`, { table: tableLabel(table.ref) });
  }

  async acquireRunLock(command: string, partition?: Partition): Promise<RunLock> {
    return acquireDatabaseLock(this.#path, command, partition);
  }

  async close(): Promise<void> {
    this.#db.close();
  }

  #prepare(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#run(() => this.#db.prepare(sql), "prepare a statement");
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #run<T>(body: () => T, doing: string, subject: ErrorSubject = {}): T {
    try {
      return body();
    } catch (error) {
      throw this.#describe(error, doing, subject);
    }
  }

  #describe(error: unknown, doing: string, subject: ErrorSubject = {}): DbcryptError {
    if (error instanceof DbcryptError) return error;
    const code = (error as { code?: string }).code;
    if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") {
      return new DbcryptError("database_error", `${doing}: the database stayed locked by another writer past the busy timeout [${code}]`, {
        hint: "retry when the application's write transaction ends, or raise --busy-timeout; nothing was written by this batch",
        cause: error,
        retryable: true,
        subject: { ...subject, sqliteCode: code },
      });
    }
    if (code === "SQLITE_READONLY") {
      return new DbcryptError("database_read_only", `${doing}: the SQLite database is read-only [${code}]`, { hint: "make the file and its directory writable", subject: { ...subject, sqliteCode: code } });
    }
    return toDbcryptError(error, doing, subject);
  }
}

function requireWritable(path: string): void {
  for (const [what, target] of [["file", path], ["directory", dirname(path)]] as const) {
    try {
      accessSync(target, constants.W_OK);
    } catch {
      throw new DbcryptError("database_read_only", `SQLite database ${what} ${target} is not writable`, {
        hint: `make the ${what} writable (SQLite also needs the directory, for its journal)`,
      });
    }
  }
}

/** SQLite affinity rule 2: a declared type containing CHAR, CLOB or TEXT has TEXT affinity. */
function hasTextAffinity(declaredType: string): boolean {
  return /CHAR|CLOB|TEXT/i.test(declaredType);
}

function textOrNull(cell: unknown): string | null {
  if (cell === null || cell === undefined) return null;
  if (typeof cell === "string") return cell;
  return String(cell);
}

interface RawKeyRow {
  number: number;
  active_key_digest: string | null;
  revoked_key_digest: string | null;
  created_at: string | null;
  revoked_at: string | null;
  test: string;
}

function toKeyRow(row: RawKeyRow): KeyRow {
  return {
    number: Number(row.number),
    activeKeyDigest: row.active_key_digest,
    revokedKeyDigest: row.revoked_key_digest,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
    test: row.test,
  };
}


