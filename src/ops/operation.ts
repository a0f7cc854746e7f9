import type { EmitEvent } from "./events.js";
import type { KeySourceLine } from "./keys-state.js";
import type { Partition } from "../db/partition.js";
import type { PacingOptions } from "./pacing.js";
import type { RunOutcome, TableOutcome } from "./runner.js";

/**
 * What every write operation shares: the request knobs the CLI fills in, the plan it shows
 * before asking for confirmation, and the result it reports. Plans and results hold key ids,
 * labels and counts only.
 */
export interface WriteRequest {
  batchSize: number;
  pacing: PacingOptions;
  /** Worker threads for the crypto of large runs; 0 keeps it on the main thread. */
  cryptoThreads: number;
  /** About how many bytes of values a batch may hold; undefined: DEFAULT_BATCH_BYTES. */
  batchBytes?: number;
  emit: EmitEvent;
  shouldStop: () => boolean;
  /** Why shouldStop turned true, for the summary. */
  stopReason: () => "signal" | "deadline" | undefined;
  /** Resolves to continue; throws (cancelled / confirmation_required) to stop before any write. */
  confirm: (plan: OperationPlan) => Promise<void>;
  /** --partition: walk only this part of every table, beside the other parts' runs. */
  partition?: Partition;
}

export interface PlanLine {
  column: string;
  from: string;
  to: string;
  rows: number;
}

export interface OperationPlan {
  command: "rotate" | "decrypt" | "delete";
  target: string;
  preset: string;
  lines: PlanLine[];
  keyActions: string[];
  totalRows: number;
  nothingToDo: boolean;
  /** Schema warnings (columns a preset does not know, preset tables the database lacks). */
  warnings: string[];
  /** Which source supplied each key the run uses. */
  keySources: KeySourceLine[];
  /** `I/N` with --partition: this run rewrites part I of N; the counts above are the whole database's. */
  partition?: string;
}

export type OperationStatus = "done" | "nothing-to-do" | "dry-run" | "stopped" | "incomplete" | "failed-rows";

export interface OperationResult {
  command: string;
  status: OperationStatus;
  plan: OperationPlan;
  tables: TableOutcome[];
  rowsWritten: number;
  valuesWritten: number;
  undecryptable: RunOutcome["undecryptable"];
  unresolvedConflicts: number;
  keysInserted: string[];
  keysRevoked: string[];
  keysKept: { keyId: string; reason: string }[];
  elapsedMs: number;
  /** done, or why the run ended early. */
  stopReason: "done" | "signal" | "deadline";
  /** The command to run next, when the run did not finish. */
  continueWith: string | undefined;
  /** How to supply what continueWith had to leave out (the URL's password); absent otherwise. */
  continueNote?: string;
}

/**
 * `keysKept` counts keys the run meant to revoke but found still in use. Past undecryptable rows,
 * that means values arrived under an old key after the walk passed them (an application still
 * writing with it): the run is not finished, and reporting it done would tell automation to drop
 * that key.
 */
export function statusFromOutcome(outcome: RunOutcome | undefined, keysKept = 0): OperationStatus {
  if (outcome === undefined) return "done";
  if (outcome.stoppedEarly) return "stopped";
  if (outcome.undecryptable.length > 0) return "failed-rows";
  if (outcome.unresolvedConflicts > 0 || keysKept > 0) return "incomplete";
  return "done";
}

export function emptyResult(command: string, plan: OperationPlan, status: OperationStatus, startedAt: number): OperationResult {
  return {
    command,
    status,
    plan,
    tables: [],
    rowsWritten: 0,
    valuesWritten: 0,
    undecryptable: [],
    unresolvedConflicts: 0,
    keysInserted: [],
    keysRevoked: [],
    keysKept: [],
    elapsedMs: Date.now() - startedAt,
    stopReason: "done",
    continueWith: undefined,
  };
}
