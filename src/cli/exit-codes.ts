import type { DbcryptError, ErrorCode } from "../errors.js";
import type { OperationStatus } from "../ops/operation.js";

/**
 * The one place that turns what happened into a process exit code (docs/exit-codes.md). Commands
 * return an outcome and everything below them throws typed errors; cli/main.ts maps both here,
 * and so do the JSON documents that report an exit code and the second-signal exit.
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  refused: 3,
  stopped: 4,
  locked: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** What a command reports when it did not throw. */
export type CommandOutcome =
  | { kind: "done" }
  | { kind: "operation"; status: OperationStatus }
  | { kind: "health"; healthy: boolean };

export const DONE: CommandOutcome = { kind: "done" };

const EXIT_CODE_BY_STATUS: Record<OperationStatus, ExitCode> = {
  done: ExitCode.ok,
  "nothing-to-do": ExitCode.ok,
  "dry-run": ExitCode.ok,
  stopped: ExitCode.stopped,
  incomplete: ExitCode.stopped,
  "failed-rows": ExitCode.refused,
};

const EXIT_CODE_BY_ERROR: Record<ErrorCode, ExitCode> = {
  usage: ExitCode.usage,
  bad_key: ExitCode.usage,
  bad_config: ExitCode.usage,
  confirmation_required: ExitCode.usage,
  cancelled: ExitCode.usage,
  bad_database_url: ExitCode.usage,
  database_not_found: ExitCode.usage,
  database_unreachable: ExitCode.failure,
  database_error: ExitCode.failure,
  database_read_only: ExitCode.usage,
  key_source_failed: ExitCode.failure,
  kms_unavailable: ExitCode.failure,
  keys_table_missing: ExitCode.refused,
  schema_refused: ExitCode.refused,
  unknown_key: ExitCode.refused,
  canary_failed: ExitCode.refused,
  key_revoked: ExitCode.refused,
  key_in_use: ExitCode.refused,
  lock_held: ExitCode.locked,
  internal: ExitCode.failure,
};

export function exitCodeForOutcome(outcome: CommandOutcome): ExitCode {
  switch (outcome.kind) {
    case "done":
      return ExitCode.ok;
    case "operation":
      return EXIT_CODE_BY_STATUS[outcome.status];
    case "health":
      return outcome.healthy ? ExitCode.ok : ExitCode.refused;
  }
}

export function exitCodeForError(error: DbcryptError): ExitCode {
  return EXIT_CODE_BY_ERROR[error.code];
}

/** A second Ctrl-C ends the process at once: a stop before finishing, like --max-duration. */
export const EXIT_CODE_SECOND_SIGNAL: ExitCode = ExitCode.stopped;
