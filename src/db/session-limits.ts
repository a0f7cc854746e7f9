/**
 * The session limits and their defaults, apart from the dialects: the CLI's flags need them at
 * start-up, and the dialect modules (which load their database drivers) are loaded only for the
 * database a command actually opens.
 */
export interface PostgresSessionLimits {
  lockTimeoutMs: number;
  statementTimeoutMs: number;
  idleInTransactionTimeoutMs: number;
  connectTimeoutMs: number;
  /** undefined: the statement timeout plus QUERY_TIMEOUT_MARGIN_MS (see clientTimeouts). */
  queryTimeoutMs: number | undefined;
  keepAliveMs: number;
}

export const DEFAULT_POSTGRES_LIMITS: PostgresSessionLimits = {
  lockTimeoutMs: 2_000,
  statementTimeoutMs: 120_000,
  idleInTransactionTimeoutMs: 60_000,
  connectTimeoutMs: 10_000,
  queryTimeoutMs: undefined,
  keepAliveMs: 10_000,
};

/**
 * The client waits this much longer than the server's statement_timeout, so that a slow statement
 * is normally cancelled by the server (a retryable error) and the client's own deadline only fires
 * when the server cannot be heard at all. With statement_timeout off, the client still gives up
 * after NO_STATEMENT_TIMEOUT_QUERY_LIMIT_MS.
 */
export const QUERY_TIMEOUT_MARGIN_MS = 30_000;

export const DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 5_000;
