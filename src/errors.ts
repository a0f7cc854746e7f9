/**
 * Every failure the CLI can report is a DbcryptError: a stable code for scripts (cli/exit-codes.ts
 * maps it to the exit code in docs/exit-codes.md), and a hint that names what to fix. Messages
 * never carry key material or values, so they are safe to print and to log.
 */
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
  | "key_source_failed"
  | "kms_unavailable"
  | "keys_table_missing"
  | "schema_refused"
  | "unknown_key"
  | "canary_failed"
  | "key_revoked"
  | "key_in_use"
  | "lock_held"
  | "internal";

/**
 * What an error is about, as fields a script can act on without parsing the message (`--json`
 * prints it as error.subject). Names, key ids and codes only: never key material or values.
 */
export interface ErrorSubject {
  table?: string;
  column?: string;
  /** A row, as primary-key column → value text. */
  rowKey?: Record<string, string>;
  keyId?: string;
  keyIds?: string[];
  tables?: string[];
  /** table.column labels, e.g. the columns that still hold values under a key. */
  columns?: string[];
  /** The flag whose value was at fault, e.g. "--old-keys". */
  flag?: string;
  /** PostgreSQL's SQLSTATE of the failed statement. */
  sqlstate?: string;
  /** SQLite's extended result code of the failed statement. */
  sqliteCode?: string;
  constraint?: string;
}

export class DbcryptError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  /** Extra lines (tables, key ids, counts) shown under the message; never values or keys. */
  readonly details: readonly string[];
  /** A lock, statement or busy timeout, deadlock or serialization failure: trying again may work. */
  readonly retryable: boolean;
  readonly subject: ErrorSubject;

  constructor(code: ErrorCode, message: string, options: { hint?: string; details?: readonly string[]; cause?: unknown; retryable?: boolean; subject?: ErrorSubject } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DbcryptError";
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? [];
    this.retryable = options.retryable ?? false;
    this.subject = options.subject ?? {};
  }

  /** The same error with more detail lines and subject fields, for a caller that knows more. */
  extend(more: { details?: readonly string[]; subject?: ErrorSubject }): DbcryptError {
    return new DbcryptError(this.code, this.message, {
      hint: this.hint,
      details: [...this.details, ...(more.details ?? [])],
      cause: this.cause,
      retryable: this.retryable,
      subject: { ...this.subject, ...more.subject },
    });
  }
}

export function isDbcryptError(error: unknown): error is DbcryptError {
  return error instanceof DbcryptError;
}
