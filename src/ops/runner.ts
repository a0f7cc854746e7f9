import type { BatchFilter, BatchRow, Dialect, RowKey, RowWrite } from "../db/dialect.js";
import type { EmitEvent } from "./events.js";
import type { EncryptedTable } from "../schema/model.js";
import { tableLabel } from "../schema/model.js";
import { DbcryptError } from "../errors.js";
import { backoffDelayMs, growBatch, shrinkBatch, type RetryPolicy } from "./batch-retry.js";
import { isPaced, Pacer, type PacingOptions } from "./pacing.js";
import { createPlanner, type BatchPlanner } from "./batch-planner.js";
import type { RowTransformSpec } from "./row-transform.js";
import { isPlaintextField, prepareToOpen, readCells } from "./cells.js";
import type { ValueScheme } from "../crypto/schemes/value-scheme.js";
import type { RowFailure, RowPlan } from "./row-plans.js";
import { BatchByteBudget } from "./batch-budget.js";

/**
 * The one batch loop every write operation shares: keyset pagination over the row key, one short
 * transaction per batch (a single statement on PostgreSQL), stop on signal or deadline at a batch
 * boundary, progress events. Operations differ only in the BatchAction they hand it. Nothing is
 * held across batches, so memory stays flat whatever the table size.
 */
export type BatchAction =
  | { kind: "rewrite"; transform: RowTransformSpec }
  | { kind: "delete" };

export interface RunOptions {
  /** How the cells are stored: where a key id comes from when the table has no key-id column. */
  scheme: ValueScheme;
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
  /** Worker threads for the crypto; 0 keeps it on the main thread. */
  cryptoThreads: number;
  /** About how many bytes of values one batch may hold (--batch-bytes): --batch-size caps only rows. */
  batchBytes: number;
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

interface PlannedBatch {
  rows: BatchRow[];
  /** The LIMIT the rows were read with: fewer rows than this means the table is done. */
  limit: number;
  /** The cursor the rows were read after: where to start again if this batch has to be redone. */
  cursorBefore: RowKey | undefined;
  writes: RowWrite[];
  changedValues: Map<RowKey, number>;
  failures: { rowKey: RowKey; failure: RowFailure }[];
}

interface AppliedBatch {
  planned: PlannedBatch;
  written: number;
  valuesWritten: number;
  conflicts: number;
}

interface PendingRead {
  limit: number;
  cursorBefore: RowKey | undefined;
  rows: Promise<BatchRow[]>;
}

interface QueuedBatch {
  rows: BatchRow[];
  limit: number;
  cursorBefore: RowKey | undefined;
  planned: Promise<PlannedBatch>;
}

export async function runBatches(dialect: Dialect, tables: EncryptedTable[], options: RunOptions): Promise<RunOutcome> {
  const run: RunState = {
    dialect,
    options,
    outcomes: new Map(tables.map((table) => [tableLabel(table.ref), { table: tableLabel(table.ref), written: 0, valuesWritten: 0, conflicts: 0, undecryptable: 0 }])),
    undecryptable: [],
    reported: new Set(),
    totalRows: [...options.expectedRows.values()].reduce((sum, rows) => sum + rows, 0),
    pacer: new Pacer(options.pacing, dialect, options.emit, options.shouldStop),
    planner: options.action.kind === "rewrite" ? createPlanner(options.action.transform, options.cryptoThreads, [...options.expectedRows.values()].reduce((sum, rows) => sum + rows, 0), options.scheme) : undefined,
    done: 0,
    conflictsThisPass: 0,
  };
  try {
    return await runPasses(run, tables);
  } finally {
    await run.planner?.close();
  }
}

async function runPasses(run: RunState, tables: EncryptedTable[]): Promise<RunOutcome> {
  const { options } = run;
  for (let pass = 1; pass <= options.maxPasses; pass++) {
    if (pass > 1) options.emit({ type: "pass", pass, reason: `${run.conflictsThisPass} row(s) changed underneath during the previous pass` });
    run.conflictsThisPass = 0;
    for (const table of tables) {
      const label = tableLabel(table.ref);
      const outcome = run.outcomes.get(label) as TableOutcome;
      if (pass === 1) options.emit({ type: "table-start", table: label, rows: options.expectedRows.get(label) ?? 0 });
      const finished = await walkTable(run, table);
      if (!finished) return { tables: [...run.outcomes.values()], stoppedEarly: true, unresolvedConflicts: run.conflictsThisPass, undecryptable: run.undecryptable };
      if (pass === 1 || outcome.conflicts > 0) {
        options.emit({ type: "table-done", table: label, written: outcome.written, conflicts: outcome.conflicts, undecryptable: outcome.undecryptable });
      }
    }
    if (run.conflictsThisPass === 0) break;
  }
  return { tables: [...run.outcomes.values()], stoppedEarly: false, unresolvedConflicts: run.conflictsThisPass, undecryptable: run.undecryptable };
}

interface RunState {
  dialect: Dialect;
  options: RunOptions;
  outcomes: Map<string, TableOutcome>;
  undecryptable: RunOutcome["undecryptable"];
  reported: Set<string>;
  totalRows: number;
  pacer: Pacer;
  planner: BatchPlanner | undefined;
  done: number;
  conflictsThisPass: number;
}

/**
 * Walks one table as a pipeline: batches are read ahead and their crypto computed (on worker
 * threads when there are any, several batches at once) while the previous batch is being written.
 * At most one write is in flight, writes happen in key order, and a batch is counted only once its
 * write has committed. When a step fails with a retryable error, everything after the last
 * committed batch is dropped and read again from there, with a smaller batch, after a backoff.
 * Returns false when asked to stop (the write in flight is finished first).
 */
async function walkTable(run: RunState, table: EncryptedTable): Promise<boolean> {
  const { dialect, options } = run;
  const label = tableLabel(table.ref);
  const depth = run.planner?.depth ?? 1;
  let batchSize = options.batchSize;
  let committedCursor: RowKey | undefined;
  let readCursor: RowKey | undefined;
  let readAll = false;
  let queue: QueuedBatch[] = [];
  let inFlight: Promise<AppliedBatch> | undefined;
  let failedAttempts = 0;
  const budget = new BatchByteBudget(options.batchBytes);
  // The rows the last batch asked for: after a failure the next is half of that, not half of
  // --batch-size, which the byte budget may keep far above what was actually tried.
  let lastLimit = batchSize;
  let readAhead: PendingRead | undefined;
  const paced = isPaced(options.pacing);
  const startRead = (): PendingRead => {
    const limit = budget.rowsFor(batchSize);
    const rows = readCells(dialect, options.scheme, table, options.filter, readCursor, limit);
    // Marks a rejection handled if the batch before it fails first; awaiting it later still throws.
    rows.catch(() => undefined);
    return { limit, cursorBefore: readCursor, rows };
  };

  const settle = async (): Promise<void> => {
    const writing = inFlight;
    inFlight = undefined;
    if (writing === undefined) return;
    const applied = await writing;
    // Only a committed write ends a run of failures: a write merely issued may still fail, and
    // resetting the count then would retry a lock that is never released forever.
    failedAttempts = 0;
    committedCursor = lastRowKey(applied.planned.rows);
    // Grow back only on a commit, so each failure halves what actually failed.
    batchSize = growBatch(batchSize, options.batchSize);
    recordBatch(run, table, applied);
    await run.pacer.afterBatch(applied.valuesWritten);
  };

  for (;;) {
    await yieldToEventLoop();
    if (options.shouldStop()) {
      // A batch that fails to commit now is simply not done: the stop stands, exit 4, and the
      // next run does it. Only a failure that is not a lost lock contest ends the run as an error.
      await settle().catch((error: unknown) => {
        if (!(error instanceof DbcryptError) || !error.retryable) throw error;
      });
      return false;
    }
    try {
      await run.pacer.beforeBatch();
      while (!readAll && queue.length < depth) {
        const read = readAhead ?? startRead();
        readAhead = undefined;
        const { limit, cursorBefore } = read;
        lastLimit = limit;
        const rows = await read.rows;
        budget.observe(rows);
        if (rows.length < limit) readAll = true;
        if (rows.length === 0) break;
        readCursor = lastRowKey(rows);
        // The next batch is read while this one is prepared and planned, so the database's time
        // to answer overlaps the crypto instead of following it. Not when pacing: a batch read
        // ahead would wait out the pauses and meet more rows changed underneath.
        if (!readAll && !paced) readAhead = startRead();
        if (options.action.kind === "rewrite") await prepareToOpen(options.scheme, table, rows);
        const planned = planBatch(run, table, rows, limit, cursorBefore, options.action);
        // Marks a rejection handled if an earlier step fails first; awaiting it later still throws.
        planned.catch(() => undefined);
        queue.push({ rows, limit, cursorBefore, planned });
      }
      const next = queue.shift();
      if (next === undefined) {
        await settle();
        return true;
      }
      const planned = await next.planned;
      await settle();
      const writing = commitBatch(dialect, table, planned, options.action);
      writing.catch(() => undefined);
      inFlight = writing;
    } catch (error) {
      // Count what did commit before deciding anything, so no finished batch is lost or redone.
      const settled = await settle().then(() => undefined, (settleError: unknown) => settleError);
      const failure = settled ?? error;
      queue = [];
      readAhead = undefined;
      readCursor = committedCursor;
      readAll = false;
      failedAttempts++;
      if (!(failure instanceof DbcryptError) || !failure.retryable) throw failure;
      if (failedAttempts >= options.retryPolicy.maxAttempts) {
        throw new DbcryptError("database_error", `gave up after ${failedAttempts} tries: ${failure.message}`, {
          hint: "the tables are busy; re-run later, with a smaller --batch-size (or --batch-bytes, for large values) or a longer --lock-timeout (PostgreSQL) or --busy-timeout (SQLite); finished batches are kept",
          cause: failure,
        });
      }
      batchSize = shrinkBatch(Math.min(batchSize, lastLimit));
      const delayMs = backoffDelayMs(options.retryPolicy, failedAttempts);
      options.emit({ type: "retry", table: label, attempt: failedAttempts, error: failure.message, delayMs, nextBatchSize: batchSize });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

function lastRowKey(rows: BatchRow[]): RowKey {
  return (rows[rows.length - 1] as BatchRow).rowKey;
}

function recordBatch(run: RunState, table: EncryptedTable, applied: AppliedBatch): void {
  const { options } = run;
  const label = tableLabel(table.ref);
  const outcome = run.outcomes.get(label) as TableOutcome;
  for (const failed of applied.planned.failures) {
    const rowKey = describeRowKey(table, failed.rowKey);
    const id = `${label}|${JSON.stringify(rowKey)}|${failed.failure.column}`;
    if (run.reported.has(id)) continue;
    run.reported.add(id);
    run.undecryptable.push({ table: label, rowKey, failure: failed.failure });
    outcome.undecryptable++;
    options.emit({ type: "undecryptable", table: label, column: failed.failure.column, rowKey, keyId: failed.failure.keyId, reason: failed.failure.reason });
  }
  outcome.written += applied.written;
  outcome.valuesWritten += applied.valuesWritten;
  outcome.conflicts += applied.conflicts;
  run.conflictsThisPass += applied.conflicts;
  run.done += applied.valuesWritten;
  if (applied.conflicts > 0) options.emit({ type: "skipped-concurrent", table: label, rows: applied.conflicts });
  const tableRows = options.expectedRows.get(label) ?? 0;
  options.emit({
    type: "batch",
    table: label,
    scanned: applied.planned.rows.length,
    written: applied.written,
    conflicts: applied.conflicts,
    undecryptable: applied.planned.failures.length,
    tableDone: outcome.valuesWritten,
    tableRows: Math.max(tableRows, outcome.valuesWritten),
    done: run.done,
    totalRows: Math.max(run.totalRows, run.done),
  });
}

/**
 * A synchronous driver (better-sqlite3) resolves every await at once, so without a macrotask turn
 * here signal handlers would not run until the whole walk had finished: Ctrl-C would be ignored.
 */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The CPU part of a batch (decrypt and encrypt), done while earlier batches are being written. */
async function planBatch(run: RunState, table: EncryptedTable, rows: BatchRow[], limit: number, cursorBefore: RowKey | undefined, action: BatchAction): Promise<PlannedBatch> {
  const planned: PlannedBatch = { rows, limit, cursorBefore, writes: [], changedValues: new Map(), failures: [] };
  if (action.kind === "delete" || run.planner === undefined) return planned;
  const plans = await run.planner.plan(table, rows);
  rows.forEach((row, index) => {
    const plan = plans[index] as RowPlan;
    if (plan.kind === "write") {
      planned.writes.push({ rowKey: row.rowKey, version: row.version, context: row.context, expected: row.fields, next: plan.next, ...(plan.flag === undefined ? {} : { flag: plan.flag }) });
      planned.changedValues.set(row.rowKey, plan.changedValues);
    } else if (plan.kind === "fail") planned.failures.push({ rowKey: row.rowKey, failure: plan.failure });
  });
  return planned;
}

async function commitBatch(dialect: Dialect, table: EncryptedTable, planned: PlannedBatch, action: BatchAction): Promise<AppliedBatch> {
  const { rows } = planned;
  if (action.kind === "delete") {
    // Where the database could not filter (key ids inside the values), plaintext rows came too.
    const encryptedRows = rows.filter((row) => row.fields.some((field) => !isPlaintextField(field)));
    const changed = await dialect.deleteBatch(table, encryptedRows);
    const encryptedValues = encryptedRows.reduce((sum, row) => sum + row.fields.filter((field) => !isPlaintextField(field)).length, 0);
    // Rows that stopped being encrypted between read and delete are not counted.
    const valuesWritten = changed === encryptedRows.length ? encryptedValues : Math.round((encryptedValues * changed) / Math.max(1, encryptedRows.length));
    return { planned, written: changed, valuesWritten, conflicts: 0 };
  }
  const outcome = await dialect.writeBatch(table, planned.writes);
  let valuesWritten = 0;
  for (const values of planned.changedValues.values()) valuesWritten += values;
  for (const rowKey of outcome.conflicts) valuesWritten -= planned.changedValues.get(rowKey) ?? 0;
  return { planned, written: outcome.written, valuesWritten, conflicts: outcome.conflicts.length };
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
