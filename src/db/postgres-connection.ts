import type { Socket } from "node:net";
import pg from "pg";
import { DbcryptError } from "../errors.js";
import { formatDuration } from "../durations.js";
import { NO_ANSWER_CODE, normalizeDatabaseError, toDbcryptError } from "./database-errors.js";
import { redactUrl } from "./target.js";

/**
 * One PostgreSQL connection of dbcrypt's, bounded in time on the client side. Server-side timeouts
 * (statement_timeout, lock_timeout) only act on requests the server receives: behind a silent
 * network partition (a firewall dropping packets, a failed-over host) a query would wait forever.
 * So every connect and every statement here has a client-side deadline; on expiry the socket is
 * destroyed (the statement's fate is then the server's: it commits or rolls back on its own, and
 * compare-and-swap makes either safe for a re-run), and the caller gets one clear error.
 */
export interface ClientTimeouts {
  /** TCP connect, TLS and authentication. */
  connectTimeoutMs: number;
  /** How long one statement may go without an answer. */
  queryTimeoutMs: number;
  /** TCP keepalive idle time (client socket and server session), and how often the run-lock session is pinged; 0 = off. */
  keepAliveMs: number;
}

/** How long close() waits for a polite goodbye before it destroys the socket. */
const CLOSE_GRACE_MS = 2_000;
/** Server-side keepalive: probes this often after the idle time, and gives up after this many. */
const SERVER_KEEPALIVE_PROBES = 3;

/** The client gave up waiting; carried as a driver-style error so one mapping describes it. */
export class NoAnswerError extends Error {
  readonly code = NO_ANSWER_CODE;
  constructor(what: string) {
    super(what);
    this.name = "NoAnswerError";
  }
}

export interface SessionSettings {
  lockTimeoutMs: number;
  statementTimeoutMs: number;
  idleInTransactionTimeoutMs: number;
  readOnly: boolean;
}

export class PostgresConnection {
  readonly #client: pg.Client;
  readonly #queryTimeoutMs: number;
  /** Set once a deadline passed: the socket is gone and every later call fails the same way. */
  #noAnswer: NoAnswerError | undefined;

  private constructor(client: pg.Client, queryTimeoutMs: number) {
    this.#client = client;
    this.#queryTimeoutMs = queryTimeoutMs;
  }

  static async open(url: string, applicationName: string, timeouts: ClientTimeouts, settings: SessionSettings): Promise<PostgresConnection> {
    if (!canParseConnectionString(url)) {
      throw new DbcryptError("bad_database_url", `the PostgreSQL URL ${redactUrl(url)} cannot be parsed`, {
        hint: "percent-encode special characters in the user and password (/ as %2F, @ as %40, # as %23, ? as %3F)",
      });
    }
    const client = new pg.Client({
      connectionString: url,
      application_name: applicationName,
      connectionTimeoutMillis: timeouts.connectTimeoutMs,
      keepAlive: timeouts.keepAliveMs > 0,
      keepAliveInitialDelayMillis: timeouts.keepAliveMs,
    });
    // An idle client whose server goes away emits 'error'; without a listener that kills the
    // process before the failing query can report it properly.
    client.on("error", () => undefined);
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw describeConnectFailure(error, url, timeouts.connectTimeoutMs);
    }
    const connection = new PostgresConnection(client, timeouts.queryTimeoutMs);
    // Session settings only, set with SET rather than the startup packet's options, which some
    // connection poolers reject. dbcrypt never changes server-wide configuration.
    try {
      await connection.query(sessionSettingsSql(settings, timeouts.keepAliveMs));
    } catch (error) {
      await connection.close();
      throw toDbcryptError(error, "set session timeouts");
    }
    return connection;
  }

  query<Row extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<Row>> {
    return this.#withDeadline(() => this.#client.query<Row>(text, values));
  }

  queryArrays(text: string, values: unknown[]): Promise<pg.QueryArrayResult<unknown[]>> {
    return this.#withDeadline(() => this.#client.query({ text, values, rowMode: "array" }));
  }

  /** A `SELECT 1` with its own, usually shorter, deadline: is the session still there? */
  async ping(deadlineMs: number): Promise<void> {
    await this.#withDeadline(() => this.#client.query("SELECT 1"), Math.min(deadlineMs, this.#queryTimeoutMs));
  }

  /** Calls `listener` once if the connection dies ('error' or 'end'); returns the unsubscribe. */
  onLost(listener: () => void): () => void {
    this.#client.on("error", listener);
    this.#client.on("end", listener);
    return () => {
      this.#client.off("error", listener);
      this.#client.off("end", listener);
    };
  }

  /** Ends the session; a peer that does not answer the goodbye gets its socket destroyed. */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#destroySocket();
        resolve();
      }, CLOSE_GRACE_MS);
    });
    await Promise.race([this.#client.end().catch(() => undefined), grace]);
    clearTimeout(timer);
  }

  async #withDeadline<T>(run: () => Promise<T>, deadlineMs = this.#queryTimeoutMs): Promise<T> {
    if (this.#noAnswer !== undefined) throw this.#noAnswer;
    const flag = deadlineMs === this.#queryTimeoutMs ? "--query-timeout" : "the run-lock ping, 2 × --keepalive";
    const timer = setTimeout(() => {
      this.#noAnswer = new NoAnswerError(`no answer from PostgreSQL within ${formatDuration(deadlineMs)} (${flag}); the connection was closed`);
      this.#destroySocket();
    }, deadlineMs);
    try {
      return await run();
    } catch (error) {
      // Destroying the socket fails the statement with the driver's own words; say why instead.
      throw this.#noAnswer ?? error;
    } finally {
      clearTimeout(timer);
    }
  }

  #destroySocket(): void {
    // pg keeps its socket on the connection object and offers no public way to abort it.
    (this.#client as unknown as { connection?: { stream?: Socket } }).connection?.stream?.destroy();
  }
}

function sessionSettingsSql(settings: SessionSettings, keepAliveMs: number): string {
  const statements = [
    `SET lock_timeout = ${settings.lockTimeoutMs}`,
    `SET statement_timeout = ${settings.statementTimeoutMs}`,
    `SET idle_in_transaction_session_timeout = ${settings.idleInTransactionTimeoutMs}`,
  ];
  if (keepAliveMs > 0) {
    // The server probes too, so that a session whose client vanished (and the run lock it holds)
    // ends within seconds instead of the operating system's default of two hours.
    const seconds = Math.max(1, Math.round(keepAliveMs / 1000));
    statements.push(`SET tcp_keepalives_idle = ${seconds}`, `SET tcp_keepalives_interval = ${seconds}`, `SET tcp_keepalives_count = ${SERVER_KEEPALIVE_PROBES}`);
  }
  if (settings.readOnly) statements.push("SET default_transaction_read_only = on");
  return statements.join("; ");
}

function describeConnectFailure(error: unknown, url: string, connectTimeoutMs: number): DbcryptError {
  const code = normalizeDatabaseError(error).code;
  const where = redactUrl(url);
  if (code === "3D000") return new DbcryptError("database_not_found", `database in ${where} does not exist`, { hint: "check the database name in --db" });
  if (code === "28P01" || code === "28000") {
    return new DbcryptError("database_unreachable", `PostgreSQL at ${where} rejected the credentials [${code}]`, { hint: "check the user and password in --db, PGPASSWORD or ~/.pgpass" });
  }
  const message = error instanceof Error ? error.message : String(error);
  if (/connection timeout|timeout expired/i.test(message)) {
    return new DbcryptError("database_unreachable", `cannot connect to PostgreSQL at ${where}: no answer within ${formatDuration(connectTimeoutMs)} (--connect-timeout)`, {
      hint: "check the host, port, firewall and that the server is running; raise --connect-timeout for a slow link",
      cause: error,
    });
  }
  return new DbcryptError("database_unreachable", `cannot connect to PostgreSQL at ${where}: ${message}`, {
    hint: "check the host, port and that the server is running",
    cause: error,
  });
}

function canParseConnectionString(url: string): boolean {
  try {
    new URL(url);
    return true;
  } catch {
    return false;
  }
}
