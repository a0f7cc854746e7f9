import type { BatchFilter, BatchRow, Dialect, RowKey, RowWrite } from "../db/dialect.js";
import type { EmitEvent } from "../report/events.js";
import type { EncryptedTable } from "../schema/model.js";
import { tableLabel } from "../schema/model.js";
import { growBatch, shrinkBatch, withBatchRetries, type RetryPolicy } from "./batch-retry.js";
import { Pacer, type PacingOptions } from "./pacing.js";

/**
 * The one batch loop every write operation shares: keyset pagination over the row key, one short
 * transaction per batch (a single statement on PostgreSQL), stop on signal or deadline at a batch
 * boundary, progress events. Operations differ only in the BatchAction they hand it. Nothing is
 * held across batches, so memory stays flat whatever the table size.
 */
export interface RowFailure {
  column: string;
  keyId: string | null;
  reason: string;
}

/** `changedValues` counts the fields the write changes: progress is measured in values, like the plan. */
export type RowPlan = { kind: "write"; next: RowWrite["next"]; changedValues: number } | { kind: "skip" } | { kind: "fail"; failure: RowFailure };

export type BatchAction =
  | { kind: "rewrite"; planRow: (row: BatchRow, table: EncryptedTable) => RowPlan }
  | { kind: "delete" };

export interface RunOptions {
  batchSize: number;
  filter: BatchFilter;
  action: BatchAction;
  /** Set when the run must stop at the next batch boundary (signal, deadline). */
  shouldStop: () => boolean;
  emit: EmitEvent;
  /** Values expected per table (from the census), for progress totals. */
  expectedRows: Map<string, number>;
  /** Passes over the tables while rows keep changing underneath (compare-and-swap misses). */
  maxPasses: number;
  pacing: PacingOptions;
  retryPolicy: RetryPolicy;
}

export interface TableOutcome {
  table: string;
  /** Rows written (rows deleted or cleared, for delete). */
  written: number;
  /** Values changed: a row with two re-encrypted columns counts two. */
  valuesWritten: number;
  conflicts: number;
  undecryptable: number;
}

export interface RunOutcome {
  tables: TableOutcome[];
  stoppedEarly: boolean;
  /** Rows still changed underneath after the last pass. */
  unresolvedConflicts: number;
  undecryptable: { table: string; rowKey: Record<string, string>; failure: RowFailure }[];
}

type AppliedBatch = Awaited<ReturnType<typeof applyBatch>>;

export async function runBatches(dialect: Dialect, tables: EncryptedTable[], options: RunOptions): Promise<RunOutcome> {
  const outcomes = new Map<string, TableOutcome>(tables.map((table) => [tableLabel(table.ref), { table: tableLabel(table.ref), written: 0, valuesWritten: 0, conflicts: 0, undecryptable: 0 }]));
  const undecryptable: RunOutcome["undecryptable"] = [];
  const reported = new Set<string>();
  const totalRows = [...options.expectedRows.values()].reduce((sum, rows) => sum + rows, 0);
  const pacer = new Pacer(options.pacing, dialect, options.emit, options.shouldStop);
  const progress = { done: 0 };
  let conflictsThisPass = 0;
  for (let pass = 1; pass <= options.maxPasses; pass++) {
    if (pass > 1) options.emit({ type: "pass", pass, reason: `${conflictsThisPass} row(s) changed underneath during the previous pass` });
    conflictsThisPass = 0;
    for (const table of tables) {
      const label = tableLabel(table.ref);
      const outcome = outcomes.get(label) as TableOutcome;
      const tableRows = options.expectedRows.get(label) ?? 0;
      if (pass === 1) options.emit({ type: "table-start", table: label, rows: tableRows });
      let tableDone = outcome.valuesWritten;
      let after: RowKey | undefined;
      let batchSize = options.batchSize;
      // The next batch, read on a second connection while this one is written (where possible).
      let prefetched: { rows: Promise<BatchRow[]>; limit: number } | undefined;
      for (;;) {
        await yieldToEventLoop();
        if (options.shouldStop()) return { tables: [...outcomes.values()], stoppedEarly: true, unresolvedConflicts: conflictsThisPass, undecryptable };
        await pacer.beforeBatch();
        const step = await withBatchRetries(
          options.retryPolicy,
          async (): Promise<{ rows: BatchRow[]; limit: number; batch: AppliedBatch | undefined }> => {
            const read = prefetched ?? { rows: dialect.readBatch(table, options.filter, after, batchSize), limit: batchSize };
            prefetched = undefined;
            const rows = await read.rows;
            if (rows.length === 0) return { rows, limit: read.limit, batch: undefined };
            if (dialect.capabilities.concurrentReads && rows.length === read.limit) {
              const nextRows = dialect.readBatch(table, options.filter, (rows[rows.length - 1] as BatchRow).rowKey, batchSize);
              // Marks the rejection handled if this batch fails first; awaiting it later still throws.
              nextRows.catch(() => undefined);
              prefetched = { rows: nextRows, limit: batchSize };
            }
            return { rows, limit: read.limit, batch: await applyBatch(dialect, table, rows, options.action) };
          },
          (error, attempt, delayMs) => {
            prefetched = undefined;
            batchSize = shrinkBatch(batchSize);
            options.emit({ type: "retry", table: label, attempt, error: error.message, delayMs, nextBatchSize: batchSize });
          },
        );
        const { rows, limit, batch } = step;
        if (batch === undefined) break;
        after = (rows[rows.length - 1] as BatchRow).rowKey;
        for (const failed of batch.failures) {
          const rowKey = describeRowKey(table, failed.rowKey);
          const id = `${label}|${JSON.stringify(rowKey)}|${failed.failure.column}`;
          if (reported.has(id)) continue;
          reported.add(id);
          undecryptable.push({ table: label, rowKey, failure: failed.failure });
          outcome.undecryptable++;
          options.emit({ type: "undecryptable", table: label, column: failed.failure.column, rowKey, keyId: failed.failure.keyId, reason: failed.failure.reason });
        }
        outcome.written += batch.written;
        outcome.valuesWritten += batch.valuesWritten;
        outcome.conflicts += batch.conflicts;
        conflictsThisPass += batch.conflicts;
        tableDone += batch.valuesWritten;
        progress.done += batch.valuesWritten;
        if (batch.conflicts > 0) options.emit({ type: "skipped-concurrent", table: label, rows: batch.conflicts });
        options.emit({
          type: "batch",
          table: label,
          scanned: rows.length,
          written: batch.written,
          conflicts: batch.conflicts,
          undecryptable: batch.failures.length,
          tableDone,
          tableRows: Math.max(tableRows, tableDone),
          done: progress.done,
          totalRows: Math.max(totalRows, progress.done),
        });
        const fullBatch = rows.length === limit;
        batchSize = growBatch(batchSize, options.batchSize);
        await pacer.afterBatch(batch.valuesWritten);
        if (!fullBatch) break;
      }
      if (pass === 1 || outcome.conflicts > 0) {
        options.emit({ type: "table-done", table: label, written: outcome.written, conflicts: outcome.conflicts, undecryptable: outcome.undecryptable });
      }
    }
    if (conflictsThisPass === 0) break;
  }
  return { tables: [...outcomes.values()], stoppedEarly: false, unresolvedConflicts: conflictsThisPass, undecryptable };
}

/**
 * A synchronous driver (better-sqlite3) resolves every await at once, so without a macrotask turn
 * here signal handlers would not run until the whole walk had finished: Ctrl-C would be ignored.
 */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function applyBatch(
  dialect: Dialect,
  table: EncryptedTable,
  rows: BatchRow[],
  action: BatchAction,
): Promise<{ written: number; valuesWritten: number; conflicts: number; failures: { rowKey: RowKey; failure: RowFailure }[] }> {
  if (action.kind === "delete") {
    const changed = await dialect.deleteBatch(table, rows.map((row) => row.rowKey));
    const encryptedValues = rows.reduce((sum, row) => sum + row.fields.filter((field) => field.keyId !== null && field.keyId !== "").length, 0);
    // Rows that stopped being encrypted between read and delete are not counted.
    const valuesWritten = changed === rows.length ? encryptedValues : Math.round((encryptedValues * changed) / rows.length);
    return { written: changed, valuesWritten, conflicts: 0, failures: [] };
  }
  const writes: RowWrite[] = [];
  const changedValues = new Map<RowKey, number>();
  const failures: { rowKey: RowKey; failure: RowFailure }[] = [];
  for (const row of rows) {
    const plan = action.planRow(row, table);
    if (plan.kind === "write") {
      writes.push({ rowKey: row.rowKey, version: row.version, expected: row.fields, next: plan.next });
      changedValues.set(row.rowKey, plan.changedValues);
    } else if (plan.kind === "fail") failures.push({ rowKey: row.rowKey, failure: plan.failure });
  }
  const outcome = await dialect.writeBatch(table, writes);
  let valuesWritten = 0;
  for (const values of changedValues.values()) valuesWritten += values;
  for (const rowKey of outcome.conflicts) valuesWritten -= changedValues.get(rowKey) ?? 0;
  return { written: outcome.written, valuesWritten, conflicts: outcome.conflicts.length, failures };
}

/** Row keys are how problems are reported: never by value. */
export function describeRowKey(table: EncryptedTable, rowKey: RowKey): Record<string, string> {
  const described: Record<string, string> = {};
  table.rowKey.forEach((name, index) => {
    const value = rowKey[index];
    described[name] = Buffer.isBuffer(value) ? `x'${value.toString("hex")}'` : String(value);
  });
  return described;
}
