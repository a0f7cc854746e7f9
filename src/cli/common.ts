import { resolve } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { DbcryptError } from "../errors.js";
import { ExitCode, exitCodeForError, exitCodeForOutcome, type CommandOutcome } from "./exit-codes.js";
import type { OperationPlan, OperationResult, WriteRequest } from "../ops/operation.js";
import { openSession, type ReadSession, type Session, type SessionLimits } from "../ops/session.js";
import type { WriteOperation } from "../ops/write-operation.js";
import { DEFAULT_POSTGRES_LIMITS, DEFAULT_SQLITE_BUSY_TIMEOUT_MS, QUERY_TIMEOUT_MARGIN_MS } from "../db/session-limits.js";
import { EVENT_SCHEMA_VERSION } from "../ops/events.js";
import { urlWithoutPassword } from "../db/target.js";
import { describeKeyList } from "../key-sources/registry.js";
import type { KeySourceFlags } from "./key-input.js";
import { PRESET_NAMES, type PresetName } from "../schema/config-file.js";
import { DEFAULT_KEY_COMMAND_TIMEOUT_MS } from "../key-sources/key-source.js";
import type { EmitEvent } from "../ops/events.js";
import { formatPlan, formatResult } from "../report/human.js";
import { createProgressRenderer } from "../report/progress.js";
import { confirmStep } from "./interaction.js";
import { StopController } from "./stop.js";
import { MAX_PARTITIONS, partitionFromText, type Partition } from "../db/partition.js";
import { DEFAULT_BATCH_BYTES } from "../ops/batch-budget.js";

export interface GlobalFlags extends KeySourceFlags {
  db?: string;
  config?: string;
  preset?: PresetName;
  encryptionConfig?: string;
  newEncryptionConfig?: string;
  allowAescbcWrites?: boolean;
  repairDoubleEncryption?: boolean;
  aadFallback?: string;
  keysTable?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  color?: boolean;
}

export interface WriteFlags extends GlobalFlags {
  yes?: boolean;
  dryRun?: boolean;
  batchSize: number;
  maxDuration?: number;
  sleep: number;
  maxRowsPerSecond?: number;
  maxReplicaLag?: number;
  jsonEvents?: boolean;
  cryptoThreads: number;
  partition?: Partition;
  batchBytes: number;
}

export interface TimeoutFlags {
  lockTimeout: number;
  statementTimeout: number;
  idleInTransactionTimeout: number;
  connectTimeout: number;
  queryTimeout?: number;
  keepalive: number;
  busyTimeout: number;
}

export const DEFAULT_BATCH_SIZE = 1000;

export function addGlobalOptions(command: Command): Command {
  command
    .option("--db <url>", "postgres://… URL, sqlite:PATH, or a .db/.sqlite/.sqlite3 path (env DBCRYPT_DATABASE_URL, then DATABASE_URL)")
    .option("--config <file>", "config file (default: ./dbcrypt.config.json when present)")
    .addOption(new Option("--preset <name>", "which application's tables and scheme to expect (overrides the config file's preset; default auto: Coder when its tables are there)").choices(PRESET_NAMES))
    .option("--encryption-config <file>", "Kubernetes EncryptionConfiguration the data is under now (Obot): its keys read")
    .option("--new-encryption-config <file>", "rotate: the configuration to move to; its first provider's first key writes")
    .option("--allow-aescbc-writes", "let rotate write with an aescbc provider, which has no MAC")
    .option("--repair-double-encryption", "open values that decrypt to another k8s:enc: cell (obot#2767) and rotate them as the inner value")
    .addOption(new Option("--aad-fallback <forms>", "additional data to try when a value does not authenticate with its table's (legacy rows)").choices(["empty"]))
    .option("--keys-table <name>", "name of the keys table (default dbcrypt_keys)")
    .option("--json", "print one JSON document on stdout instead of text")
    .option("-q, --quiet", "print only errors and the result")
    .option("-v, --verbose", "a progress line for every batch, and error causes in full")
    .option("--no-color", "plain output (NO_COLOR is honoured too)")
    .addOption(new Option("--lock-timeout <duration>", "PostgreSQL lock_timeout for dbcrypt's own sessions").default(DEFAULT_POSTGRES_LIMITS.lockTimeoutMs, "2s").argParser(parseDuration))
    .addOption(new Option("--statement-timeout <duration>", "PostgreSQL statement_timeout for dbcrypt's own sessions").default(DEFAULT_POSTGRES_LIMITS.statementTimeoutMs, "2m").argParser(parseDuration))
    .addOption(new Option("--idle-in-transaction-timeout <duration>", "PostgreSQL idle_in_transaction_session_timeout").default(DEFAULT_POSTGRES_LIMITS.idleInTransactionTimeoutMs, "1m").argParser(parseDuration))
    .addOption(new Option("--connect-timeout <duration>", "PostgreSQL: give up connecting (TCP, TLS, login) after this long").default(DEFAULT_POSTGRES_LIMITS.connectTimeoutMs, "10s").argParser(parsePositiveDuration))
    .addOption(new Option("--query-timeout <duration>", "PostgreSQL: client-side limit on waiting for any one statement's answer; then the connection is closed (exit 1)").default(undefined, `--statement-timeout + ${QUERY_TIMEOUT_MARGIN_MS / 1000}s`).argParser(parsePositiveDuration))
    .addOption(new Option("--keepalive <duration>", "PostgreSQL: TCP keepalive idle time, and how often the run-lock session is pinged (0ms: off)").default(DEFAULT_POSTGRES_LIMITS.keepAliveMs, "10s").argParser(parseKeepalive))
    .addOption(new Option("--busy-timeout <duration>", "SQLite: how long to wait for another writer's lock").default(DEFAULT_SQLITE_BUSY_TIMEOUT_MS, "5s").argParser(parseDuration));
  return addKeySourceOptions(command);
}

/** How key sources behave (src/key-sources): every command that reads a key or an encryption config takes these. */
export function addKeySourceOptions(command: Command): Command {
  return command
    .option("--allow-insecure-key-file", "read key files (and encryption configs) that group or others can read")
    .option("--passphrase-file <file>", "the passphrase for age: key backups, from this file")
    .option("--passphrase-env <var>", "the passphrase for age: key backups, from this environment variable")
    .addOption(new Option("--key-command-timeout <duration>", "how long an exec: key command may run").default(DEFAULT_KEY_COMMAND_TIMEOUT_MS, "30s").argParser(parsePositiveDuration));
}

export function addWriteOptions(command: Command): Command {
  return addGlobalOptions(command)
    .option("-y, --yes", "confirm without a prompt (required when there is no TTY)")
    .option("--dry-run", "show the plan and write nothing")
    .addOption(new Option("--batch-size <rows>", "rows per batch transaction, at most").default(DEFAULT_BATCH_SIZE).argParser(parsePositiveInteger))
    .addOption(new Option("--batch-bytes <size>", "about this many bytes of values per batch, fewer rows when values are large (e.g. 512KiB, 16MiB)").default(DEFAULT_BATCH_BYTES, "1MiB").argParser(parseByteSize))
    .addOption(new Option("--max-duration <duration>", "stop cleanly at the first batch boundary after this long (90s, 45m, 2h); exit 4").argParser(parseDuration))
    .addOption(new Option("--sleep <duration>", "pause between batches (e.g. 100ms)").default(0, "0").argParser(parseDuration))
    .addOption(new Option("--max-rows-per-second <n>", "ceiling on values written per second").argParser(parsePositiveInteger))
    .addOption(new Option("--max-replica-lag <duration>", "PostgreSQL: pause while a replica's replay lag is above this").argParser(parseDuration))
    .option("--json-events", "stream JSON Lines progress events on stdout, ending with the result")
    .addOption(new Option("--crypto-threads <n>", "worker threads for decrypt/encrypt on large runs (0: main thread only)").default(0).argParser(parseThreadCount))
    .addOption(new Option("--partition <I/N>", "walk only part I (0-based) of N disjoint parts of every table, beside N-1 other runs (Kubernetes: \"$(JOB_COMPLETION_INDEX)/N\")").argParser(parsePartition));
}

export function parsePositiveInteger(text: string): number {
  if (!/^[1-9][0-9]*$/.test(text) || Number(text) > 1_000_000) throw new InvalidArgumentError("must be a whole number from 1 to 1000000");
  return Number(text);
}

/** A size such as 512KiB, 4MiB or 1048576 (bytes); at least 1 KiB, at most 1 GiB. */
export function parseByteSize(text: string): number {
  const match = /^([0-9]+)(B|KiB|MiB|GiB)?$/.exec(text);
  const unit = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[(match?.[2] ?? "B") as "B"];
  const bytes = Number(match?.[1]) * unit;
  if (match === null || bytes < 1024 || bytes > 1024 ** 3) throw new InvalidArgumentError("must be a size from 1KiB to 1GiB, such as 512KiB or 16MiB");
  return bytes;
}

export function parsePartition(text: string): Partition {
  const partition = partitionFromText(text);
  if (partition === undefined) throw new InvalidArgumentError(`must be I/N with 0 <= I < N <= ${MAX_PARTITIONS}, such as 0/3`);
  return partition;
}

export function parseThreadCount(text: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) > 64) throw new InvalidArgumentError("must be a whole number from 0 to 64");
  return Number(text);
}

/** Node runs a timer longer than 2^31-1 ms after 1 ms instead, so no duration may exceed it. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

export function parseDuration(text: string): number {
  if (text === "0") return 0;
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$/.exec(text);
  if (!match) throw new InvalidArgumentError("must be a duration such as 90s, 45m or 2h");
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as "ms" | "s" | "m" | "h"];
  const ms = Number(match[1]) * unit;
  if (ms > MAX_DURATION_MS) throw new InvalidArgumentError("must be at most 596h");
  return ms;
}

/** --keepalive: off (0), or whole seconds, which is what TCP keepalive can be set to. */
export function parseKeepalive(text: string): number {
  const ms = parseDuration(text);
  if (ms !== 0 && (ms < 1000 || ms % 1000 !== 0)) throw new InvalidArgumentError("must be 0ms (off) or whole seconds, such as 10s");
  return ms;
}

/** A duration that must not be 0: a zero deadline would fail every connect or statement. */
export function parsePositiveDuration(text: string): number {
  const ms = parseDuration(text);
  if (ms <= 0) throw new InvalidArgumentError("must be a duration above 0, such as 10s or 2m");
  return ms;
}

export function databaseFrom(flags: GlobalFlags): string | undefined {
  return flags.db ?? process.env.DBCRYPT_DATABASE_URL ?? process.env.DATABASE_URL;
}

/** For status, keys list and dry runs: read-only on the server, and by type (no write methods). */
export function withReadSession<T>(flags: GlobalFlags, command: string, body: (session: ReadSession) => Promise<T>): Promise<T> {
  return openedSession(flags, command, true, body);
}

/** For the commands that write. */
export function withSession<T>(flags: GlobalFlags, command: string, body: (session: Session) => Promise<T>): Promise<T> {
  return openedSession(flags, command, false, body);
}

async function openedSession<T>(flags: GlobalFlags, command: string, readOnly: boolean, body: (session: Session) => Promise<T>): Promise<T> {
  const session = await openSession({ database: databaseFrom(flags), configPath: flags.config, preset: flags.preset, schemeOptions: schemeOptionsFrom(flags), aadFallbackEmpty: flags.aadFallback === "empty", keysTable: flags.keysTable, command, readOnly, limits: sessionLimits(flags) });
  try {
    return await body(session);
  } finally {
    await session.dialect.close();
  }
}

/** The Kubernetes flags are the k8s-encryption-config scheme's options; paths are made absolute for worker threads. */
function schemeOptionsFrom(flags: GlobalFlags): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  if (flags.encryptionConfig !== undefined) options.encryptionConfig = resolve(flags.encryptionConfig);
  if (flags.newEncryptionConfig !== undefined) options.newEncryptionConfig = resolve(flags.newEncryptionConfig);
  if (flags.allowAescbcWrites) options.allowAescbcWrites = true;
  if (flags.repairDoubleEncryption) options.repairDoubleEncryption = true;
  if (flags.allowInsecureKeyFile && (flags.encryptionConfig !== undefined || flags.newEncryptionConfig !== undefined)) options.allowInsecureKeyFile = true;
  return options;
}

function sessionLimits(flags: GlobalFlags): SessionLimits {
  const timeouts = flags as GlobalFlags & Partial<TimeoutFlags>;
  return {
    postgres: {
      lockTimeoutMs: timeouts.lockTimeout ?? DEFAULT_POSTGRES_LIMITS.lockTimeoutMs,
      statementTimeoutMs: timeouts.statementTimeout ?? DEFAULT_POSTGRES_LIMITS.statementTimeoutMs,
      idleInTransactionTimeoutMs: timeouts.idleInTransactionTimeout ?? DEFAULT_POSTGRES_LIMITS.idleInTransactionTimeoutMs,
      connectTimeoutMs: timeouts.connectTimeout ?? DEFAULT_POSTGRES_LIMITS.connectTimeoutMs,
      queryTimeoutMs: timeouts.queryTimeout,
      keepAliveMs: timeouts.keepalive ?? DEFAULT_POSTGRES_LIMITS.keepAliveMs,
    },
    sqliteBusyTimeoutMs: timeouts.busyTimeout ?? DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
  };
}

export function writeStdout(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

export function note(flags: GlobalFlags, text: string): void {
  if (!flags.quiet) process.stderr.write(`${text}\n`);
}

/** Builds the WriteRequest the ops need from flags: progress, stop handling and confirmation. */
export function writeRequest(flags: WriteFlags, command: "rotate" | "decrypt" | "delete", stop: StopController): { request: WriteRequest; close: () => void } {
  const progress = createProgressRenderer({
    mode: flags.quiet || flags.json || flags.jsonEvents ? "silent" : process.stderr.isTTY ? "bar" : "lines",
    lineIntervalMs: flags.verbose ? 0 : 5_000,
  });
  const emit: EmitEvent = flags.jsonEvents ? (event) => writeStdout(JSON.stringify({ version: EVENT_SCHEMA_VERSION, time: new Date().toISOString(), ...event })) : (event) => progress.emit(event);
  const request: WriteRequest = {
    batchSize: flags.batchSize,
    pacing: { sleepMs: flags.sleep, maxValuesPerSecond: flags.maxRowsPerSecond, maxReplicaLagMs: flags.maxReplicaLag },
    cryptoThreads: flags.cryptoThreads,
    batchBytes: flags.batchBytes,
    ...(flags.partition === undefined ? {} : { partition: flags.partition }),
    emit,
    shouldStop: () => stop.shouldStop(),
    stopReason: () => stop.reason,
    confirm: async (plan: OperationPlan) => {
      if (!flags.quiet && !flags.json && !flags.jsonEvents) process.stderr.write(`${formatPlan(plan)}\n`);
      await confirmStep(`${command} ${plan.totalRows} value(s) on ${plan.target}?`, { yes: Boolean(flags.yes), command, severe: command !== "rotate" });
      stop.startClock(flags.maxDuration);
    },
  };
  return { request, close: progress.close };
}

const KEY_FLAGS = new Set(["--new-key", "--old-keys", "--keys"]);

export interface ContinueCommand {
  command: string;
  /** Set when something had to be left out of the command, saying how to supply it. */
  note: string | undefined;
}

export const PASSWORD_LEFT_OUT_NOTE =
  "the password in --db is left out: set PGPASSWORD (or add a ~/.pgpass entry) before running it, or put the whole URL in DBCRYPT_DATABASE_URL and drop --db";

/**
 * The exact command to continue a run that stopped: the same arguments, with each key reference
 * as its key source shows it (a file path as is, a literal key as <key>) and the database URL's
 * password left out. A URL that came from DBCRYPT_DATABASE_URL or DATABASE_URL is not in the
 * arguments, so that command runs as is.
 */
export function continueCommand(argv: readonly string[]): ContinueCommand {
  const args = argv.slice(2);
  let passwordLeftOut = false;
  const shownUrl = (url: string) => {
    const shown = urlWithoutPassword(url);
    passwordLeftOut ||= shown.removed;
    return shown.url;
  };
  const shown = args.map((arg, index) => {
    const previous = args[index - 1] ?? "";
    const [flag, inlineValue] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [undefined, undefined];
    if (flag !== undefined && KEY_FLAGS.has(flag)) return `${flag}=${describeKeyList(inlineValue ?? "")}`;
    if (KEY_FLAGS.has(previous)) return describeKeyList(arg);
    if (previous === "--db" || flag === "--db") return flag ? `--db=${shownUrl(inlineValue ?? "")}` : shownUrl(arg);
    return arg;
  });
  const command = ["dbcrypt", ...shown].map((part) => (/^[\w@%+=:,./<>-]+$/.test(part) ? part : `'${part.replace(/'/g, "'\\''")}'`)).join(" ");
  return { command, note: passwordLeftOut ? PASSWORD_LEFT_OUT_NOTE : undefined };
}

/**
 * Runs rotate, decrypt or delete with everything the three share: signal handling, progress,
 * confirmation, the session, the summary, and (when an error ends a run part-way) the command to
 * continue with once the cause is fixed.
 */
export async function runWriteCommand<Request extends WriteRequest>(
  flags: WriteFlags,
  command: "rotate" | "decrypt" | "delete",
  operation: WriteOperation<Request>,
  completeRequest: (request: WriteRequest) => Request,
): Promise<CommandOutcome> {
  const stop = new StopController();
  stop.install();
  const { request, close } = writeRequest(flags, command, stop);
  try {
    // A dry run gets a session without write methods (and read-only on the server).
    const result = flags.dryRun
      ? await withReadSession(flags, command, (session) => operation.dryRun(session, completeRequest(request)))
      : await withSession(flags, command, (session) => operation.run(session, completeRequest(request)));
    return printResult(flags, result);
  } catch (error) {
    const exitCode = error instanceof DbcryptError ? exitCodeForError(error) : undefined;
    if (error instanceof DbcryptError && !flags.dryRun && (exitCode === ExitCode.failure || exitCode === ExitCode.locked)) {
      const next = continueCommand(process.argv);
      const line = exitCode === ExitCode.locked
        ? `to run it once the other run has finished: ${next.command}`
        : `finished batches are kept and no row is half-written; to continue once the cause is fixed: ${next.command}`;
      throw error.extend({ details: [line, ...(next.note === undefined ? [] : [next.note])] });
    }
    throw error;
  } finally {
    close();
    stop.uninstall();
  }
}

export function printResult(flags: GlobalFlags, result: OperationResult): CommandOutcome {
  if (result.continueWith !== undefined) {
    const next = continueCommand(process.argv);
    result.continueWith = next.command;
    if (next.note !== undefined) result.continueNote = next.note;
  }
  const outcome: CommandOutcome = { kind: "operation", status: result.status };
  // Scripts read the exit code from the document too; it is the one the process ends with.
  const documented = { ...result, exitCode: exitCodeForOutcome(outcome) };
  const events = (flags as WriteFlags).jsonEvents;
  if (events) writeStdout(JSON.stringify({ version: EVENT_SCHEMA_VERSION, time: new Date().toISOString(), type: "result", ...documented, command: result.command }));
  else if (flags.json) writeStdout(JSON.stringify({ version: 1, ...documented }, null, 2));
  else writeStdout(formatResult(result));
  return outcome;
}

export function requireValue<T>(value: T | undefined, message: string, hint: string): T {
  if (value === undefined) throw new DbcryptError("usage", message, { hint });
  return value;
}
