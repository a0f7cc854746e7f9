/**
 * Every failure the CLI can report is a DbcryptError: a stable code for scripts, an exit code from
 * docs/exit-codes.md, and a hint that names what to fix. Messages never carry key material or
 * values, so they are safe to print and to log.
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

export type ErrorCode =
  | "usage"
  | "bad_key"
  | "bad_config"
  | "confirmation_required"
  | "cancelled"
  | "bad_database_url"
  | "database_not_found"
  | "database_unreachable"
  | "database_error"
  | "database_read_only"
  | "keys_table_missing"
  | "schema_refused"
  | "unknown_key"
  | "canary_failed"
  | "key_revoked"
  | "key_in_use"
  | "check_failed"
  | "undecryptable_rows"
  | "stopped"
  | "lock_held"
  | "internal";

const exitCodeByError: Record<ErrorCode, ExitCode> = {
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
  keys_table_missing: ExitCode.refused,
  schema_refused: ExitCode.refused,
  unknown_key: ExitCode.refused,
  canary_failed: ExitCode.refused,
  key_revoked: ExitCode.refused,
  key_in_use: ExitCode.refused,
  check_failed: ExitCode.refused,
  undecryptable_rows: ExitCode.refused,
  stopped: ExitCode.stopped,
  lock_held: ExitCode.locked,
  internal: ExitCode.failure,
};

export class DbcryptError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;
  /** Extra lines (tables, key ids, counts) shown under the message; never values or keys. */
  readonly details: readonly string[];
  /** A lock, statement or busy timeout, deadlock or serialization failure: trying again may work. */
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: { hint?: string; details?: readonly string[]; cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DbcryptError";
    this.code = code;
    this.exitCode = exitCodeByError[code];
    this.hint = options.hint;
    this.details = options.details ?? [];
    this.retryable = options.retryable ?? false;
  }
}

export function isDbcryptError(error: unknown): error is DbcryptError {
  return error instanceof DbcryptError;
}
