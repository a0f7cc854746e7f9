import { createHash } from "node:crypto";
import { hostname } from "node:os";
import type { QueryArrayResult, QueryResult, QueryResultRow } from "pg";
import { DbcryptError, type ErrorSubject } from "../errors.js";
import type { CatalogTable, EncryptedColumn, EncryptedTable } from "../schema/model.js";
import { tableLabel } from "../schema/model.js";
import { normalizeDatabaseError, toDbcryptError, withDriverFields } from "./database-errors.js";
import type { BatchFilter, BatchRow, CensusGroup, Dialect, KeyRow, PrefixCounts, RowKey, RowWrite, RunLock, WriteOutcome } from "./dialect.js";
import {
  createKeysTablePostgresSql,
  insertKeySql,
  postgresPlaceholder,
  revokeKeySql,
  selectKeyByDigestSql,
  selectKeysSql,
} from "./keys-table-sql.js";
import { hasPlaintext, toCensusGroups } from "./census-groups.js";
import { censusByKeySql, censusSql, deleteBatchSql, prefixCensusPostgresSql, selectBatchSql, updateBatchByVersionSql, updateBatchSql } from "./postgres-sql.js";
import type { KeyPrefixes } from "./prefix-census-sql.js";
import { quoteIdent } from "./identifiers.js";
import { binaryTextArrayParameters } from "./postgres-text-array.js";
import {
  CATALOG_COLUMNS_SQL,
  CATALOG_TABLES_SQL,
  CATALOG_UNIQUE_KEYS_SQL,
  KEYS_TABLE_EXISTS_SQL,
  KEYS_TABLE_FOREIGN_KEYS_SQL,
  REPLICA_LAG_SQL,
  RUN_LOCK_HOLDER_SQL,
  RUN_UNLOCK_ALL_SQL,
  TRY_RUN_LOCK_SQL,
  TRY_SHARED_RUN_LOCK_SQL,
  OTHER_PARTITION_COUNTS_SQL,
} from "./postgres-catalog-sql.js";
import { PostgresConnection, type ClientTimeouts } from "./postgres-connection.js";
import { redactUrl } from "./target.js";
import { MAX_PARTITIONS, partitionLabel, type Partition } from "./partition.js";
import { DEFAULT_POSTGRES_LIMITS, QUERY_TIMEOUT_MARGIN_MS, type PostgresSessionLimits } from "./session-limits.js";

export { DEFAULT_POSTGRES_LIMITS, QUERY_TIMEOUT_MARGIN_MS, type PostgresSessionLimits } from "./session-limits.js";
const NO_STATEMENT_TIMEOUT_QUERY_LIMIT_MS = 600_000;

export function clientTimeouts(limits: PostgresSessionLimits): ClientTimeouts {
  const derived = limits.statementTimeoutMs > 0 ? limits.statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS : NO_STATEMENT_TIMEOUT_QUERY_LIMIT_MS;
  return { connectTimeoutMs: limits.connectTimeoutMs, queryTimeoutMs: limits.queryTimeoutMs ?? derived, keepAliveMs: limits.keepAliveMs };
}

/** 'dbcr' as an int4: the advisory-lock namespace shared by every dbcrypt run. */
const ADVISORY_LOCK_CLASS = 0x64626372;
/** The class of each part's own lock (--partition): "dbcp". */
const PARTITION_LOCK_CLASS = 0x64626370;
/** Plus N: the class every part of an N-part job holds shared, so parts of jobs with different N can find each other. */
const PARTITION_COUNT_LOCK_CLASS = 0x64620000;
const MAX_KEY_INSERT_ATTEMPTS = 5;

export class PostgresDialect implements Dialect {
  readonly target: string;
  readonly keysTable: string;
  readonly #url: string;
  readonly #client: PostgresConnection;
  readonly #applicationName: string;
  readonly #limits: PostgresSessionLimits;
  readonly #readOnly: boolean;
  /** Batch reads run here, so the next batch is read while the previous one is written. */
  #readClient: Promise<PostgresConnection> | undefined;
  /** Replica lag is asked for here (--max-replica-lag), opened on first use. */
  #lagClient: Promise<PostgresConnection> | undefined;
  /** Set when the session holding the run lock dies: the lock went with it, so work must stop. */
  #lockLost: DbcryptError | undefined;

  private constructor(url: string, keysTable: string, client: PostgresConnection, applicationName: string, limits: PostgresSessionLimits, readOnly: boolean) {
    this.#url = url;
    this.target = redactUrl(url);
    this.keysTable = keysTable;
    this.#client = client;
    this.#applicationName = applicationName;
    this.#limits = limits;
    this.#readOnly = readOnly;
  }

  /** `readOnly` sessions (status, dry runs) are read-only on the server too, so they cannot write. */
  static async connect(url: string, keysTable: string, options: { command: string; limits?: PostgresSessionLimits; readOnly?: boolean }): Promise<PostgresDialect> {
    const applicationName = `dbcrypt ${options.command} pid=${process.pid} host=${hostname()}`.slice(0, 63);
    const limits = options.limits ?? DEFAULT_POSTGRES_LIMITS;
    const readOnly = options.readOnly ?? false;
    const client = await openConnection(url, applicationName, limits, readOnly);
    return new PostgresDialect(url, keysTable, client, applicationName, limits, readOnly);
  }

  async keysTableExists(): Promise<boolean> {
    const result = await this.#query<{ found: string | null }>(KEYS_TABLE_EXISTS_SQL, [quoteIdent(this.keysTable)]);
    return result.rows[0]?.found != null;
  }

  async createKeysTable(): Promise<void> {
    await this.#inTransaction("BEGIN", async () => {
      for (const statement of createKeysTablePostgresSql(this.keysTable)) await this.#query(statement);
    });
  }

  async readKeys(): Promise<KeyRow[]> {
    const result = await this.#query<RawKeyRow>(selectKeysSql(this.keysTable));
    return result.rows.map(toKeyRow);
  }

  async insertActiveKey(keyId: string, canary: string): Promise<KeyRow> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#inTransaction("BEGIN ISOLATION LEVEL REPEATABLE READ", async () => {
          const existing = await this.#query<RawKeyRow>(selectKeyByDigestSql(this.keysTable, postgresPlaceholder), [keyId]);
          const row = existing.rows[0];
          if (row !== undefined) return toKeyRow(row);
          await this.#query(insertKeySql(this.keysTable, postgresPlaceholder), [keyId, canary]);
          const inserted = await this.#query<RawKeyRow>(selectKeyByDigestSql(this.keysTable, postgresPlaceholder), [keyId]);
          return toKeyRow(inserted.rows[0] as RawKeyRow);
        });
      } catch (error) {
        // Another process inserting its key at the same moment: a serialization failure, or a
        // collision on number. Both resolve by reading again.
        const code = normalizeDatabaseError(error).code;
        if ((code === "40001" || code === "23505") && attempt < MAX_KEY_INSERT_ATTEMPTS) continue;
        throw toDbcryptError(error, "insert key row");
      }
    }
  }

  async revokeKey(keyId: string): Promise<"revoked" | "not-active"> {
    if (this.#lockLost !== undefined) throw this.#lockLost;
    try {
      const result = await this.#client.query(revokeKeySql(this.keysTable, postgresPlaceholder), [keyId]);
      return result.rowCount === 1 ? "revoked" : "not-active";
    } catch (error) {
      const normalized = normalizeDatabaseError(error);
      if (normalized.code === "23503") {
        throw new DbcryptError("key_in_use", `key ${keyId} cannot be revoked: table ${normalized.table ?? "?"} still references it (foreign key ${normalized.constraint ?? "?"})`, {
          hint: "run rotate or decrypt with this key first; `dbcrypt status` shows which values use it",
          subject: withDriverFields({ keyId }, normalized),
        });
      }
      throw toDbcryptError(error, `revoke key ${keyId}`, { keyId });
    }
  }

  async introspect(): Promise<CatalogTable[]> {
    const tables = await this.#query<{ oid: number; schema: string; name: string }>(
      CATALOG_TABLES_SQL,
    );
    const columns = await this.#query<{ oid: string; name: string; type: string; not_null: boolean; is_text: boolean }>(
      CATALOG_COLUMNS_SQL,
    );
    const keys = await this.#query<{ oid: string; is_primary: boolean; columns: string[] }>(
      CATALOG_UNIQUE_KEYS_SQL,
    );
    const foreignKeys = await this.#query<{ oid: string; column: string; constraint: string }>(
      KEYS_TABLE_FOREIGN_KEYS_SQL,
      [quoteIdent(this.keysTable)],
    );
    const byOid = new Map<string, CatalogTable>();
    for (const table of tables.rows) {
      byOid.set(String(table.oid), { schema: table.schema, name: table.name, columns: [], primaryKey: undefined, uniqueNotNullKeys: [], keysTableForeignKeys: [] });
    }
    for (const column of columns.rows) {
      byOid.get(String(column.oid))?.columns.push({ name: column.name, dataType: column.type, isText: column.is_text, nullable: !column.not_null });
    }
    for (const key of keys.rows) {
      const table = byOid.get(String(key.oid));
      if (table === undefined) continue;
      if (key.is_primary) table.primaryKey = key.columns;
      else table.uniqueNotNullKeys.push(key.columns);
    }
    for (const foreignKey of foreignKeys.rows) {
      byOid.get(String(foreignKey.oid))?.keysTableForeignKeys.push({ column: foreignKey.column, constraint: foreignKey.constraint });
    }
    return [...byOid.values()];
  }

  async census(table: EncryptedTable, column: EncryptedColumn): Promise<CensusGroup[]> {
    const doing = `census ${tableLabel(table.ref)}.${column.column}`;
    const subject = { table: tableLabel(table.ref), column: column.column };
    const byKey = censusByKeySql(table, column);
    const counts = (await this.#query<{ key_id: string | null; rows: string }>(byKey.text, byKey.values, doing, subject)).rows.map((row) => ({ keyId: row.key_id, rows: Number(row.rows) }));
    if (!hasPlaintext(counts)) return toCensusGroups(counts, undefined);
    const breakdown = censusSql(table, column);
    const row = (await this.#query<{ rows: string; nulls: string; empties: string; blanks: string; empty_objects: string }>(breakdown.text, breakdown.values, doing, subject)).rows[0];
    return toCensusGroups(counts, row && {
      rows: Number(row.rows),
      nulls: Number(row.nulls),
      empties: Number(row.empties),
      blanks: Number(row.blanks),
      emptyObjects: Number(row.empty_objects),
    });
  }

  async countByPrefix(table: EncryptedTable, keys: KeyPrefixes[]): Promise<PrefixCounts[]> {
    const counts: PrefixCounts[] = [];
    for (const column of table.columns) {
      const statement = prefixCensusPostgresSql(table, column, keys);
      const result = await this.#queryArrays(statement.text, statement.values, `census ${tableLabel(table.ref)}.${column.column}`, { table: tableLabel(table.ref), column: column.column }, await this.#reader());
      const cells = result.rows[0] ?? [];
      counts.push({ nulls: Number(cells[0] ?? 0), forms: { bare: Number(cells[1] ?? 0), "json-envelope": Number(cells[2] ?? 0) }, byKey: keys.map((_, index) => Number(cells[index + 3] ?? 0)) });
    }
    return counts;
  }

  async readBatch(table: EncryptedTable, filter: BatchFilter, after: RowKey | undefined, limit: number): Promise<BatchRow[]> {
    const statement = selectBatchSql(table, filter, after, limit);
    const result = await this.#queryArrays(statement.text, statement.values, `read ${tableLabel(table.ref)}`, { table: tableLabel(table.ref) }, await this.#reader());
    const keyWidth = table.rowKey.length;
    return result.rows.map((cells) => {
      const fields = table.columns.map((_, index) => ({
        value: cells[keyWidth + index * 2] as string | null,
        keyId: cells[keyWidth + index * 2 + 1] as string | null,
      }));
      const contextAt = keyWidth + table.columns.length * 2 + 1;
      const row: BatchRow = { rowKey: cells.slice(0, keyWidth), fields, version: cells[keyWidth + table.columns.length * 2] as string };
      if (table.context.length > 0) row.context = Object.fromEntries(table.context.map((input, index) => [input.input, cells[contextAt + index] as string | null]));
      return row;
    });
  }

  async writeBatch(table: EncryptedTable, writes: RowWrite[]): Promise<WriteOutcome> {
    if (writes.length === 0) return { written: 0, conflicts: [] };
    const rowKeys = table.rowKey.map((_, index) => writes.map((write) => write.rowKey[index]));
    const expected = table.columns.flatMap((_, index) => [
      writes.map((write) => write.expected[index]?.value ?? null),
      writes.map((write) => write.expected[index]?.keyId ?? null),
    ]);
    const next = table.columns.flatMap((_, index) => [
      writes.map((write) => write.next[index]?.value ?? null),
      writes.map((write) => write.next[index]?.keyId ?? null),
    ]);
    if (table.rowFlag !== undefined) next.push(writes.map((write) => (write.flag === undefined ? null : String(write.flag))));
    const versions = writes.map((write) => write.version);
    const statement = versions.every((version) => version !== undefined)
      ? updateBatchByVersionSql(table, rowKeys, versions, next)
      : updateBatchSql(table, rowKeys, expected, next);
    const result = await this.#queryArrays(statement.text, binaryTextArrayParameters(statement.values), `write ${tableLabel(table.ref)}`, { table: tableLabel(table.ref) });
    // Row keys are unique, so as many rows back as writes sent means none conflicted: the usual
    // case needs no per-row bookkeeping.
    if (result.rows.length === writes.length) return { written: writes.length, conflicts: [] };
    const writtenKeys = new Set(result.rows.map((cells) => JSON.stringify(cells)));
    const conflicts = writes.filter((write) => !writtenKeys.has(JSON.stringify(write.rowKey))).map((write) => write.rowKey);
    return { written: result.rows.length, conflicts };
  }

  async deleteBatch(table: EncryptedTable, rows: BatchRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    const columns = table.rowKey.map((_, index) => rows.map((row) => row.rowKey[index]));
    const statement = deleteBatchSql(table, columns, rows.map((row) => row.version));
    const result = await this.#query(statement.text, binaryTextArrayParameters(statement.values), `delete from ${tableLabel(table.ref)}`, { table: tableLabel(table.ref) });
    return result.rowCount ?? 0;
  }

  /**
   * A run without --partition holds the database's lock exclusively. A partitioned run holds it
   * shared, so the parts of one job run together but never beside a whole run, plus its own part's
   * lock exclusively, so a part never runs twice at once.
   */
  async acquireRunLock(command: string, partition?: Partition): Promise<RunLock> {
    // A separate session holds the lock, so a batch error that resets the work session cannot
    // silently drop it.
    const lockClient = await this.#open(false);
    const objectId = lockObjectId(this.keysTable);
    const locks = partition === undefined
      ? [{ sql: TRY_RUN_LOCK_SQL, classId: ADVISORY_LOCK_CLASS, objectId, what: "the lock on this database" }]
      : [
          { sql: TRY_SHARED_RUN_LOCK_SQL, classId: ADVISORY_LOCK_CLASS, objectId, what: "the lock on this database (a run without --partition)" },
          { sql: TRY_RUN_LOCK_SQL, classId: PARTITION_LOCK_CLASS, objectId: partitionLockObjectId(this.keysTable, partition), what: `the lock on partition ${partitionLabel(partition)}` },
          // Held shared by every part of a job of N parts; a part of a job with another N is refused below.
          { sql: TRY_SHARED_RUN_LOCK_SQL, classId: PARTITION_COUNT_LOCK_CLASS + partition.count, objectId, what: `the lock of a ${partition.count}-part job` },
        ];
    try {
      for (const lock of locks) {
        const result = await lockClient.query<{ locked: boolean }>(lock.sql, [lock.classId, lock.objectId]);
        if (result.rows[0]?.locked === true) continue;
        const holder = await lockClient.query<{ application_name: string; client_addr: string | null; backend_start: Date; pid: number }>(
          RUN_LOCK_HOLDER_SQL,
          [lock.classId, lock.objectId],
        );
        const row = holder.rows[0];
        const who = row === undefined
          ? "another session"
          : `"${row.application_name}" (server pid ${row.pid}${row.client_addr ? `, from ${row.client_addr}` : ""}, connected since ${row.backend_start.toISOString()})`;
        throw new DbcryptError("lock_held", `another dbcrypt run holds ${lock.what}: ${who}`, {
          hint: "wait for it to finish; if it is stuck, end that server session with pg_terminate_backend(pid)",
        });
      }
      if (partition !== undefined) {
        const other = await lockClient.query<{ parts: string }>(OTHER_PARTITION_COUNTS_SQL, [PARTITION_COUNT_LOCK_CLASS + 1, PARTITION_COUNT_LOCK_CLASS + MAX_PARTITIONS, PARTITION_COUNT_LOCK_CLASS + partition.count, objectId]);
        const parts = other.rows[0]?.parts;
        if (parts !== undefined) {
          throw new DbcryptError("lock_held", `another dbcrypt run holds a part of a ${Number(parts) - PARTITION_COUNT_LOCK_CLASS}-part job; this run is a part of ${partition.count}`, {
            hint: "every part of one job takes the same N in --partition I/N; wait for the other job, or give this one its N",
          });
        }
      }
    } catch (error) {
      await lockClient.close();
      throw toDbcryptError(error, "take the run lock");
    }
    void command;
    // The advisory lock lives only as long as its session. If that connection drops (network, a
    // pooler, pg_terminate_backend) while this run goes on, a second run could start alongside it,
    // so every later statement fails instead (see #query).
    const onLost = () => {
      this.#lockLost ??= new DbcryptError("database_unreachable", "lost the database connection that holds the run lock; stopped so that no second dbcrypt run can work alongside this one", {
        hint: "check that the database is up and reachable, then re-run; finished batches are kept",
      });
    };
    const unsubscribe = lockClient.onLost(onLost);
    // The lock session is otherwise idle, and an idle connection behind a silent partition looks
    // healthy until it is used; the server would end it (and free the lock) while this run went on.
    const heartbeat = new LockHeartbeat(lockClient, this.#limits.keepAliveMs, onLost);
    return {
      release: async () => {
        await heartbeat.stop();
        unsubscribe();
        await lockClient.query(RUN_UNLOCK_ALL_SQL).catch(() => undefined);
        await lockClient.close();
      },
    };
  }

  async replicaLagMs(): Promise<number> {
    // On a session of its own: the write session may have a batch in flight when the runner
    // asks, and the read session the next batch's read.
    this.#lagClient ??= this.#open(true);
    const result = await (await this.#lagClient)
      .query<{ lag_ms: number | null; hidden: string }>(
        REPLICA_LAG_SQL,
      )
      .catch((error: unknown) => {
        throw toDbcryptError(error, "measure replica lag");
      });
    // Without pg_read_all_stats the server hides each replica's state and lag as NULL, which would
    // read as "no lag" and never pause. (A caught-up, idle replica also shows a NULL lag, but
    // always shows its state.)
    if (Number(result.rows[0]?.hidden ?? 0) > 0) {
      throw new DbcryptError("usage", "--max-replica-lag cannot see replica lag: this role may not read pg_stat_replication", {
        hint: "grant the role pg_monitor (or pg_read_all_stats), or drop --max-replica-lag",
      });
    }
    return Number(result.rows[0]?.lag_ms ?? 0);
  }

  async close(): Promise<void> {
    const reader = this.#readClient;
    const lag = this.#lagClient;
    this.#readClient = undefined;
    this.#lagClient = undefined;
    await Promise.all([
      this.#client.close(),
      reader?.then((client) => client.close()).catch(() => undefined),
      lag?.then((client) => client.close()).catch(() => undefined),
    ]);
  }

  #reader(): Promise<PostgresConnection> {
    this.#readClient ??= this.#open(this.#readOnly);
    return this.#readClient;
  }

  #open(readOnly: boolean): Promise<PostgresConnection> {
    return openConnection(this.#url, this.#applicationName, this.#limits, readOnly);
  }

  async #query<Row extends QueryResultRow = QueryResultRow>(text: string, values: unknown[] = [], doing = "query", subject: ErrorSubject = {}): Promise<QueryResult<Row>> {
    if (this.#lockLost !== undefined) throw this.#lockLost;
    try {
      return await this.#client.query<Row>(text, values);
    } catch (error) {
      throw toDbcryptError(error, doing, subject);
    }
  }

  async #queryArrays(text: string, values: unknown[], doing: string, subject: ErrorSubject, client: PostgresConnection = this.#client): Promise<QueryArrayResult<unknown[]>> {
    if (this.#lockLost !== undefined) throw this.#lockLost;
    try {
      return await client.queryArrays(text, values);
    } catch (error) {
      throw toDbcryptError(error, doing, subject);
    }
  }

  async #inTransaction<T>(begin: string, body: () => Promise<T>): Promise<T> {
    await this.#client.query(begin);
    try {
      const result = await body();
      await this.#client.query("COMMIT");
      return result;
    } catch (error) {
      await this.#client.query("ROLLBACK").catch(() => undefined);
      throw error;
    }
  }
}

function openConnection(url: string, applicationName: string, limits: PostgresSessionLimits, readOnly = false): Promise<PostgresConnection> {
  return PostgresConnection.open(url, applicationName, clientTimeouts(limits), {
    lockTimeoutMs: limits.lockTimeoutMs,
    statementTimeoutMs: limits.statementTimeoutMs,
    idleInTransactionTimeoutMs: limits.idleInTransactionTimeoutMs,
    readOnly,
  });
}

/**
 * Pings the run-lock session every keepalive interval; a failed or unanswered ping is a lost lock.
 * The server ends a silent session (and frees the lock) at the earliest 4 × keepalive after the
 * partition (idle time plus 3 probes, see postgres-connection.ts); a ping every keepalive that
 * must be answered within 2 × keepalive notices it by 3 × keepalive, so no second run can take
 * the lock while this one still writes.
 */
class LockHeartbeat {
  readonly #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> = Promise.resolve();

  constructor(connection: PostgresConnection, intervalMs: number, onLost: () => void) {
    if (intervalMs <= 0) return;
    this.#timer = setInterval(() => {
      this.#inFlight = this.#inFlight.then(() => connection.ping(2 * intervalMs).then(() => undefined, onLost));
    }, intervalMs);
  }

  /** Stops pinging and waits for a ping still on the wire, so the session is free for the unlock. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#inFlight;
  }
}

function lockObjectId(keysTable: string): number {
  return createHash("sha256").update(`dbcrypt-run-lock:${keysTable}`).digest().readInt32BE(0) & 0x7fffffff;
}

function partitionLockObjectId(keysTable: string, partition: Partition): number {
  return createHash("sha256").update(`dbcrypt-run-lock:${keysTable}:${partitionLabel(partition)}`).digest().readInt32BE(0) & 0x7fffffff;
}


interface RawKeyRow {
  number: number;
  active_key_digest: string | null;
  revoked_key_digest: string | null;
  created_at: Date | string | null;
  revoked_at: Date | string | null;
  test: string;
}

function toKeyRow(row: RawKeyRow): KeyRow {
  const time = (value: Date | string | null) => (value === null ? null : value instanceof Date ? value.toISOString() : String(value));
  return {
    number: Number(row.number),
    activeKeyDigest: row.active_key_digest,
    revokedKeyDigest: row.revoked_key_digest,
    createdAt: time(row.created_at),
    revokedAt: time(row.revoked_at),
    test: row.test,
  };
}
