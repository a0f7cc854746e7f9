import { DbcryptError, type ErrorSubject } from "../errors.js";

/**
 * Drivers raise errors in different shapes; this gives one: SQLSTATE or SQLite code, whether a
 * retry can help, and a DbcryptError whose message is safe to print. Server error messages never
 * carry row values for the errors we see here, but `detail` can ("Key (x)=(…)"), so it is dropped.
 */
export interface NormalizedDatabaseError {
  code: string | undefined;
  retryable: boolean;
  constraint: string | undefined;
  table: string | undefined;
}

const RETRYABLE_SQLSTATES = new Set(["40001", "40P01", "55P03", "57014"]);
const CONNECTION_ERRNOS = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EHOSTUNREACH", "ETIMEDOUT", "EPIPE", "EAI_AGAIN"]);
/** The code of postgres-connection.ts's NoAnswerError: the client gave up waiting for the server. */
export const NO_ANSWER_CODE = "DBCRYPT_NO_ANSWER";

export function normalizeDatabaseError(error: unknown): NormalizedDatabaseError {
  // An error already turned into a DbcryptError keeps the driver's codes in its subject; its own
  // `code` is dbcrypt's (database_error), which must not be read as a SQLSTATE.
  if (error instanceof DbcryptError) {
    const code = error.subject.sqlstate ?? error.subject.sqliteCode;
    return { code, retryable: error.retryable, constraint: error.subject.constraint, table: error.subject.table };
  }
  const raw = error as { code?: unknown; constraint?: unknown; table?: unknown };
  const code = typeof raw?.code === "string" ? raw.code : undefined;
  return {
    code,
    retryable: code !== undefined && (RETRYABLE_SQLSTATES.has(code) || code === "SQLITE_BUSY" || code === "SQLITE_LOCKED"),
    constraint: typeof raw?.constraint === "string" ? raw.constraint : undefined,
    table: typeof raw?.table === "string" ? raw.table : undefined,
  };
}

export function isConnectionError(error: unknown): boolean {
  const raw = error as { code?: unknown; message?: unknown };
  if (typeof raw?.code === "string" && CONNECTION_ERRNOS.has(raw.code)) return true;
  if (typeof raw?.code === "string" && raw.code.startsWith("08")) return true;
  const message = typeof raw?.message === "string" ? raw.message : "";
  // pg reports a query on a client whose socket already died (dropped while idle between batches)
  // only as "… is not queryable", without a code; it is the same lost connection.
  return /Connection terminated|connection timeout|terminating connection|is not queryable/i.test(message);
}

/** `subject` names what the statement was about (table, column, key id); the driver adds its codes. */
export function toDbcryptError(error: unknown, doing: string, subject: ErrorSubject = {}): DbcryptError {
  if (error instanceof DbcryptError) return error;
  const normalized = normalizeDatabaseError(error);
  const message = error instanceof Error ? error.message : String(error);
  const fullSubject = withDriverFields(subject, normalized);
  if (normalized.code === NO_ANSWER_CODE) {
    return new DbcryptError("database_unreachable", `${doing}: ${message}`, {
      hint: "the server or the network path to it stopped answering; check both, then re-run (finished batches are kept); raise --query-timeout only if statements legitimately take that long",
      cause: error,
      subject,
    });
  }
  if (isConnectionError(error)) {
    return new DbcryptError("database_unreachable", `${doing}: lost or could not open the database connection (${normalized.code ?? message})`, {
      hint: "check that the database is up and reachable, then re-run; finished batches are kept",
      cause: error,
      subject: fullSubject,
    });
  }
  const codeText = normalized.code ? ` [${normalized.code}]` : "";
  return new DbcryptError("database_error", `${doing}: ${message}${codeText}`, { cause: error, retryable: normalized.retryable, subject: fullSubject });
}

/**
 * SQLSTATEs are five digits and capitals with at least one digit (Node's errno codes, such as
 * EPIPE, have none); SQLite's codes start with SQLITE_.
 */
export function withDriverFields(subject: ErrorSubject, normalized: NormalizedDatabaseError): ErrorSubject {
  const code = normalized.code;
  return {
    ...subject,
    ...(code !== undefined && /^(?=.*[0-9])[0-9A-Z]{5}$/.test(code) ? { sqlstate: code } : {}),
    ...(code?.startsWith("SQLITE_") ? { sqliteCode: code } : {}),
    ...(normalized.constraint !== undefined ? { constraint: normalized.constraint } : {}),
    ...(subject.table === undefined && normalized.table !== undefined ? { table: normalized.table } : {}),
  };
}
