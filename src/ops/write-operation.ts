import type { BatchFilter, DatabaseReader, Dialect } from "../db/dialect.js";
import { withDryRunPreparation, withWritePreparation, type ReadSession, type Session, type WritePreparation } from "./session.js";
import type { SchemaPlan } from "../schema/model.js";
import { tableLabel } from "../schema/model.js";
import { takeCensus, rowsUnderKey, type Census } from "./census.js";
import { emptyResult, statusFromOutcome, type OperationPlan, type OperationResult, type WriteRequest } from "./operation.js";
import { runBatches, type BatchAction } from "./runner.js";
import { DEFAULT_RETRY_POLICY } from "./batch-retry.js";
import { KeysTableWriter } from "./keys-writer.js";
import type { DbcryptError } from "../errors.js";
import { Keyring } from "../crypto/keyring.js";
import { partitionLabel, type Partition } from "../db/partition.js";
import { DEFAULT_BATCH_BYTES } from "./batch-budget.js";

/**
 * The skeleton rotate, decrypt and delete share once their preflight passed: confirm, prepare
 * (insert the new key row), walk the tables, then revoke the keys the data no longer uses.
 * A key is revoked only after a fresh census shows no value under it.
 */
export interface WriteOperationSpec {
  plan: OperationPlan;
  schema: SchemaPlan;
  census: Census;
  /** The keys the run was given: the closing census opens values by trial with them, where the scheme stores no key id. */
  keyring: Keyring;
  filter: BatchFilter;
  action: BatchAction;
  /** Active keys to revoke once no value uses them. */
  revokeCandidates: string[];
  /** Runs once, after confirmation and before the first batch (rotate inserts its key row here); returns key ids inserted. */
  beforeWrites: (keysWriter: KeysTableWriter) => Promise<string[]>;
  continueWith: string;
}

export const MAX_CONFLICT_PASSES = 3;

/**
 * Builds a write operation's spec (census, preflight checks, plan) from what it may read. It gets
 * a reader only, so the same code serves the dry run, which must not write.
 */
export type SpecBuilder<Request> = (reader: DatabaseReader, prepared: WritePreparation, request: Request) => Promise<WriteOperationSpec>;

export interface WriteOperation<Request extends WriteRequest> {
  run(session: Session, request: Request): Promise<OperationResult>;
  /** Preflight and plan only, on a session that has no write methods. */
  dryRun(session: ReadSession, request: Request): Promise<OperationResult>;
}

export function writeOperation<Request extends WriteRequest>(command: string, build: SpecBuilder<Request>): WriteOperation<Request> {
  return {
    run: (session, request) => {
      const startedAt = Date.now();
      return withWritePreparation(session, command, async (prepared) => executeWriteOperation(session.dialect, request, forPartition(withWarnings(await build(session.dialect, prepared, request)), request.partition), startedAt), request.partition);
    },
    dryRun: (session, request) => {
      const startedAt = Date.now();
      return withDryRunPreparation(session, async (prepared) => {
        const { plan } = forPartition(withWarnings(await build(session.dialect, prepared, request)), request.partition);
        return emptyResult(plan.command, plan, "dry-run", startedAt);
      });
    },
  };
}

/**
 * A part of a partitioned run walks only its rows; the census, the plan's counts and the revoke
 * decision stay the whole database's, since values under an old key in another part are what
 * keeps that key in use.
 */
function forPartition(spec: WriteOperationSpec, partition: Partition | undefined): WriteOperationSpec {
  if (partition === undefined) return spec;
  spec.filter = { ...spec.filter, partition };
  spec.plan.partition = partitionLabel(partition);
  return spec;
}

function withWarnings(spec: WriteOperationSpec): WriteOperationSpec {
  spec.plan.warnings = [...spec.schema.warnings.map((warning) => warning.message), ...spec.plan.warnings];
  return spec;
}

async function executeWriteOperation(dialect: Dialect, request: WriteRequest, spec: WriteOperationSpec, startedAt: number): Promise<OperationResult> {
  const { plan } = spec;
  if (plan.nothingToDo) return emptyResult(plan.command, plan, "nothing-to-do", startedAt);
  await request.confirm(plan);
  // A signal during the census or the prompt stops here, before the key row or any value is written.
  if (request.shouldStop()) {
    return { ...emptyResult(plan.command, plan, "stopped", startedAt), stopReason: request.stopReason() ?? "signal", continueWith: spec.continueWith };
  }
  const expectedRows = rowsPerTable(spec, request.partition);
  request.emit({
    type: "start",
    command: plan.command,
    target: plan.target,
    dryRun: false,
    tables: [...expectedRows].map(([table, rows]) => ({ table, rows })),
    totalRows: request.partition === undefined ? plan.totalRows : [...expectedRows.values()].reduce((sum, rows) => sum + rows, 0),
  });
  // Key-table statements take the same locks as batches do, so they get the same bounded retries.
  const keysWriter = new KeysTableWriter(dialect, (what: string, error: DbcryptError, attempt: number, delayMs: number) =>
    request.emit({ type: "retry", table: dialect.keysTable, attempt, error: `${what}: ${error.message}`, delayMs, nextBatchSize: request.batchSize }));
  const keysInserted = await spec.beforeWrites(keysWriter);
  const outcome = await runBatches(dialect, spec.schema.tables, {
    scheme: spec.schema.scheme,
    batchSize: request.batchSize,
    filter: spec.filter,
    action: spec.action,
    shouldStop: request.shouldStop,
    emit: request.emit,
    expectedRows,
    maxPasses: MAX_CONFLICT_PASSES,
    pacing: request.pacing,
    cryptoThreads: request.cryptoThreads,
    batchBytes: request.batchBytes ?? DEFAULT_BATCH_BYTES,
    retryPolicy: DEFAULT_RETRY_POLICY,
  });
  const keysRevoked: string[] = [];
  const keysKept: { keyId: string; reason: string }[] = [];
  if (!outcome.stoppedEarly && spec.revokeCandidates.length > 0) {
    // Only the keys to revoke are tried where values carry no key id: the question is whether any
    // value is still under one of them, and a value none of them opens is under none of them.
    const candidates = new Keyring(undefined, spec.keyring.keys.filter((key) => spec.revokeCandidates.includes(key.id)));
    const after = await takeCensus(dialect, spec.schema, candidates, spec.keyring.ids);
    for (const keyId of spec.revokeCandidates) {
      const remaining = rowsUnderKey(after, keyId, candidates);
      if (remaining > 0) {
        // In a partitioned run the values may be other parts' not yet walked: the last part to
        // finish finds none and revokes.
        const reason = request.partition === undefined ? `${remaining} value(s) still use it` : `${remaining} value(s) still use it, in this part or another part still running; the last part to finish revokes it`;
        keysKept.push({ keyId, reason });
        request.emit({ type: "key-kept", keyId, reason });
        continue;
      }
      if ((await keysWriter.revokeKey(keyId)) === "revoked") {
        keysRevoked.push(keyId);
        request.emit({ type: "key-revoked", keyId });
      }
    }
  }
  // A part that finished its rows is done even while other parts keep an old key in use.
  const status = statusFromOutcome(outcome, request.partition === undefined ? keysKept.length : 0);
  const result: OperationResult = {
    ...emptyResult(plan.command, plan, status, startedAt),
    tables: outcome.tables,
    rowsWritten: outcome.tables.reduce((sum, table) => sum + table.written, 0),
    valuesWritten: outcome.tables.reduce((sum, table) => sum + table.valuesWritten, 0),
    undecryptable: outcome.undecryptable,
    unresolvedConflicts: outcome.unresolvedConflicts,
    keysInserted,
    keysRevoked,
    keysKept,
    stopReason: outcome.stoppedEarly ? (request.stopReason() ?? "signal") : "done",
    continueWith: status === "done" ? undefined : spec.continueWith,
  };
  request.emit({ type: "stop", reason: result.stopReason, message: status });
  return result;
}

/**
 * Values to walk per table, for progress. A part of a partitioned run expects its share of the
 * census (rows hash evenly into N parts): counting its own rows would cost every part a scan, and
 * progress shows at most 100% anyway.
 */
function rowsPerTable(spec: WriteOperationSpec, partition: Partition | undefined): Map<string, number> {
  const rows = new Map<string, number>();
  for (const table of spec.schema.tables) rows.set(tableLabel(table.ref), 0);
  for (const line of spec.plan.lines) {
    const table = line.column.slice(0, line.column.lastIndexOf("."));
    rows.set(table, (rows.get(table) ?? 0) + line.rows);
  }
  if (partition !== undefined) for (const [table, count] of rows) rows.set(table, Math.ceil(count / partition.count));
  return rows;
}
